package main

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// natsLogger is an embedded nats-server's logger in a test: it passes the
// server's errors to the test log (notices, warnings, debug and trace are
// dropped) and keeps its first fatal error, for example a port it could
// not bind, after which the server does not start.
type natsLogger struct {
	t     testing.TB
	name  string
	fatal chan string // the first fatal error; buffered, one

	mu   sync.Mutex
	done bool // the test is over: t.Logf may no longer be called
}

// newNATSLogger makes ns log its errors to t, prefixed with name, until
// the end of the test. Call it before ns.Start and before registering
// ns.Shutdown as a cleanup, so that the logger outlives the server.
func newNATSLogger(t testing.TB, ns *server.Server, name string) *natsLogger {
	l := &natsLogger{t: t, name: name, fatal: make(chan string, 1)}
	t.Cleanup(func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.done = true
	})
	ns.SetLoggerV2(l, false, false, false)
	return l
}

func (l *natsLogger) log(level, format string, v ...any) string {
	msg := fmt.Sprintf(format, v...)
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.done {
		l.t.Logf("nats %s: %s: %s", l.name, level, msg)
	}
	return msg
}

// Errorf logs a nats-server error.
func (l *natsLogger) Errorf(format string, v ...any) { l.log("error", format, v...) }

// Fatalf logs a nats-server fatal error and keeps the first.
func (l *natsLogger) Fatalf(format string, v ...any) {
	msg := l.log("fatal", format, v...)
	select {
	case l.fatal <- msg:
	default:
	}
}

// Noticef drops a notice.
func (l *natsLogger) Noticef(string, ...any) {}

// Warnf drops a warning.
func (l *natsLogger) Warnf(string, ...any) {}

// Debugf drops a debug line.
func (l *natsLogger) Debugf(string, ...any) {}

// Tracef drops a trace line.
func (l *natsLogger) Tracef(string, ...any) {}

// errNATSFatal is a server's fatal error during its start.
var errNATSFatal = errors.New("nats server failed")

// waitNATSReady waits up to d for ns to accept connections on all its
// listeners, or for its fatal error.
func waitNATSReady(ns *server.Server, l *natsLogger, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		select {
		case msg := <-l.fatal:
			return fmt.Errorf("%w: %s", errNATSFatal, msg)
		default:
		}
		if ns.ReadyForConnections(100 * time.Millisecond) {
			return nil
		}
	}
	return fmt.Errorf("nats server %s not ready in %v", ns.Name(), d)
}

// startNATSOnFreePorts starts len(build(ports)) nats servers on ports
// that freePorts picks (want of them), and waits until each accepts
// connections. A port picked by freePort is closed until its server binds
// it, and another listener (another test, another package's test process)
// may take it in between; the server then fails with a fatal error, and
// all the servers start again on fresh ports, a few times. It returns the
// running servers, their options and the ports.
func startNATSOnFreePorts(t testing.TB, want int, build func(ports []int) []*server.Options) ([]*server.Server, []*server.Options, []int) {
	t.Helper()
	const attempts = 5
	for attempt := 1; ; attempt++ {
		ports := freePorts(t, want)
		opts := build(ports)
		servers, err := startNATSServers(t, opts)
		if err == nil {
			return servers, opts, ports
		}
		if !errors.Is(err, errNATSFatal) || attempt == attempts {
			t.Fatalf("nats servers on ports %v (attempt %d): %v", ports, attempt, err)
		}
		t.Logf("nats servers on ports %v (attempt %d): %v; again on fresh ports", ports, attempt, err)
	}
}

// startNATSServers starts one server for each of opts and waits until
// each accepts connections. On failure it shuts the servers down again.
func startNATSServers(t testing.TB, opts []*server.Options) ([]*server.Server, error) {
	t.Helper()
	var (
		servers []*server.Server
		loggers []*natsLogger
	)
	for i, o := range opts {
		ns, err := server.NewServer(o)
		if err != nil {
			t.Fatal(err)
		}
		name := o.ServerName
		if name == "" {
			name = fmt.Sprint(i)
		}
		loggers = append(loggers, newNATSLogger(t, ns, name))
		go ns.Start()
		t.Cleanup(ns.Shutdown)
		servers = append(servers, ns)
	}
	for i, ns := range servers {
		if err := waitNATSReady(ns, loggers[i], patience); err != nil {
			for _, ns := range servers {
				ns.Shutdown()
			}
			return nil, err
		}
	}
	return servers, nil
}

// freePorts returns n distinct TCP ports that were free a moment ago.
// They are held open until all are picked: once closed, a port may be
// handed out again at once (on a machine short of ports the kernel does
// so often), and two servers would be given the same one.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports
}

// freePort returns a TCP port that was free a moment ago. Nothing holds
// it: a server given it must bind it with startNATSOnFreePorts, which
// starts again if another listener took it first.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestNATSStartAgainOnTakenPort gives a server, on the first attempt, a
// route port that another listener holds (as when another test takes a
// port between freePort and the server's bind): the server fails, and
// startNATSOnFreePorts starts it again on a fresh port.
func TestNATSStartAgainOnTakenPort(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	taken := busy.Addr().(*net.TCPAddr).Port
	attempts := 0
	servers, _, ports := startNATSOnFreePorts(t, 1, func(ports []int) []*server.Options {
		attempts++
		if attempts == 1 {
			ports[0] = taken
		}
		return []*server.Options{{ServerName: "taken", Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
			Cluster: server.ClusterOpts{Name: "taken-test", Host: "127.0.0.1", Port: ports[0]}}}
	})
	if attempts != 2 {
		t.Fatalf("%d attempts, want 2", attempts)
	}
	if got := servers[0].ClusterAddr(); got == nil || got.Port != ports[0] || got.Port == taken {
		t.Fatalf("route listener on %v, want port %d (not the taken %d)", got, ports[0], taken)
	}
}
