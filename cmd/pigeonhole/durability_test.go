package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.mau.fi/libsignal/keys/identity"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/relaytest"
)

// TestMain lets the test binary act as the pigeonhole command, so tests
// can run the real relay as a separate process and kill it.
func TestMain(m *testing.M) {
	if os.Getenv("PIGEONHOLE_TEST_AS_MAIN") == "1" {
		os.Exit(run(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// relayProc is a relay running as its own process.
type relayProc struct {
	cmd  *exec.Cmd
	opts client.Options
	exit chan error
}

// startRelayProc starts `pigeonhole serve` on dataDir, with more flags if
// given, and waits until it prints its address and fingerprint.
func startRelayProc(t testing.TB, dataDir string, flags ...string) *relayProc {
	t.Helper()
	args := append([]string{"serve", "-data", dataDir, "-listen", "127.0.0.1:0", "-log-level", "error"}, flags...)
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "PIGEONHOLE_TEST_AS_MAIN=1", "QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING=true")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &relayProc{cmd: cmd, exit: make(chan error, 1)}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		p.exit <- cmd.Wait()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	deadline := time.After(patience)
	for p.opts.Addr == "" || p.opts.Fingerprint == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("relay exited before it was ready")
			}
			if a, ok := strings.CutPrefix(l, "pigeonhole: listening on "); ok {
				p.opts.Addr = a
			}
			if f, ok := strings.CutPrefix(l, "pigeonhole: certificate fingerprint "); ok {
				p.opts.Fingerprint = f
			}
		case <-deadline:
			t.Fatalf("relay not ready within %v", patience)
		}
	}
	go func() {
		for range lines {
		}
	}()
	return p
}

func (p *relayProc) kill(t *testing.T, sig syscall.Signal) error {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exit:
		return err
	case <-time.After(patience):
		t.Fatal("relay did not exit")
		return nil
	}
}

// patience bounds every wait of these tests for something that must
// happen. It is far above what the wait takes on an idle machine, because
// CI runs the whole suite with -race on two cores, where relay processes,
// NATS clusters and other packages' tests all share them; a wait that runs
// out is a failure, so it must mean "never", not "slowly".
const patience = 2 * time.Minute

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	t.Cleanup(cancel)
	return ctx
}

func registerProc(t testing.TB, opts client.Options) *client.Credentials {
	t.Helper()
	cr, _ := registerIK(t, opts, 1)
	return cr
}

// registerIK registers a first device with n one-time prekeys and
// returns its identity too, for linking a second one.
func registerIK(t testing.TB, opts client.Options, n int) (*client.Credentials, *identity.KeyPair) {
	t.Helper()
	reg, ik, err := relaytest.NewRegistration(n)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(testCtx(t), &opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	acct, err := c.Register(testCtx(t), reg)
	if err != nil {
		t.Fatal(err)
	}
	return &client.Credentials{AccountID: acct.AccountID, DeviceID: acct.DeviceID, AuthKey: reg.AuthKey}, ik
}

func sessionProc(t testing.TB, opts client.Options, cr *client.Credentials, window int) *client.Conn {
	t.Helper()
	c, err := client.Dial(testCtx(t), &opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Authenticate(testCtx(t), cr, window); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestAcceptedSurvivesSIGKILL: a message the sender heard "accepted" for is
// delivered after the relay process is killed with SIGKILL and restarted,
// and a message acked (with a clean session finish) never comes back.
func TestAcceptedSurvivesSIGKILL(t *testing.T) {
	data := t.TempDir()
	p := startRelayProc(t, data)
	alice, bob := registerProc(t, p.opts), registerProc(t, p.opts)
	ac := sessionProc(t, p.opts, alice, 0)
	const n = 20
	for i := range n {
		id := make([]byte, 16)
		rand.Read(id)
		_, err := ac.Send(testCtx(t), &client.Message{Recipient: bob.AccountID, ClientMessageID: id,
			Devices: []client.DeviceMessage{{DeviceID: 1, Type: 2, Content: []byte{byte(i)}}}})
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	// Every send was answered: kill at once, with no chance to flush.
	if err := p.kill(t, syscall.SIGKILL); err == nil {
		t.Fatal("relay exited cleanly after SIGKILL")
	}
	p = startRelayProc(t, data)
	bc := sessionProc(t, p.opts, bob, 64)
	for i := range n {
		env := nextEnv(t, bc, true)
		if len(env.Content) != 1 || env.Content[0] != byte(i) {
			t.Fatalf("envelope %d has %v", i, env.Content)
		}
		if err := bc.Ack(env.Seq); err != nil {
			t.Fatal(err)
		}
	}
	if err := bc.Finish(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := p.kill(t, syscall.SIGKILL); err == nil {
		t.Fatal("relay exited cleanly after SIGKILL")
	}
	p = startRelayProc(t, data)
	bc = sessionProc(t, p.opts, bob, 64)
	for {
		ev, err := bc.Next(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if ev.Kind == client.EventEnvelope {
			t.Fatalf("acked envelope %d came back after SIGKILL", ev.Envelope.Seq)
		}
		if ev.Kind == client.EventDrained {
			break
		}
	}
	// SIGTERM shuts down cleanly.
	if err := p.kill(t, syscall.SIGTERM); err != nil {
		t.Fatalf("relay exit after SIGTERM: %v", err)
	}
}

// nextEnv returns the next envelope of c. With backlog, it must come
// before the relay says the queue is drained; without, it may come later
// (a live session on an empty queue hears "drained" first).
func nextEnv(t testing.TB, c *client.Conn, backlog bool) *client.Envelope {
	t.Helper()
	for {
		ev, err := c.Next(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if ev.Kind == client.EventEnvelope {
			return ev.Envelope
		}
		if backlog && ev.Kind == client.EventDrained {
			t.Fatal(errors.New("queue drained before the expected envelope"))
		}
	}
}
