package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pigeonhole/pigeonhole/relay/client"
)

// receiver reads Bob's envelopes on whichever relay he is connected to,
// acks them and remembers every content it saw.
type receiver struct {
	mu   sync.Mutex
	seen map[string]int
	more chan struct{} // a new content arrived
}

func newReceiver() *receiver {
	return &receiver{seen: make(map[string]int), more: make(chan struct{}, 1)}
}

// run reads from c until it fails, and returns the error.
func (r *receiver) run(ctx context.Context, c *client.Conn) error {
	for {
		ev, err := c.Next(ctx)
		if err != nil {
			return err
		}
		if ev.Kind != client.EventEnvelope {
			continue
		}
		r.mu.Lock()
		r.seen[string(ev.Envelope.Content)]++
		r.mu.Unlock()
		select {
		case r.more <- struct{}{}:
		default:
		}
		if err := c.Ack(ev.Envelope.Seq); err != nil {
			return err
		}
	}
}

// waitAll waits until every content in want was seen, and returns how
// many distinct and how many repeated deliveries there were.
func (r *receiver) waitAll(t *testing.T, want map[string]bool) (distinct, repeats int) {
	t.Helper()
	deadline := time.After(patience)
	for {
		r.mu.Lock()
		missing := 0
		for w := range want {
			if r.seen[w] == 0 {
				missing++
			}
		}
		distinct, repeats = len(r.seen), 0
		for _, n := range r.seen {
			repeats += n - 1
		}
		r.mu.Unlock()
		if missing == 0 {
			return distinct, repeats
		}
		select {
		case <-r.more:
		case <-deadline:
			t.Fatalf("%d of %d accepted messages never delivered", missing, len(want))
		}
	}
}

// sender sends numbered messages to Bob through the given sessions in
// turn. A send that fails is tried again with the same client message id
// through the next session (as a client does), until it is accepted.
type sender struct {
	bob      *client.Credentials
	sessions []*client.Conn
	mu       sync.Mutex
	accepted map[string]bool
	attempts int
	failures int
}

func (s *sender) send(t *testing.T, i int) {
	t.Helper()
	id, body := msgID(), fmt.Sprintf("m%04d", i)
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	for k := i; ; k++ {
		c := s.sessions[k%len(s.sessions)]
		sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := c.Send(sctx, textTo(s.bob, id, body))
		scancel()
		s.mu.Lock()
		s.attempts++
		if err == nil {
			s.accepted[body] = true
		} else {
			s.failures++
		}
		s.mu.Unlock()
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			t.Errorf("message %d never accepted: %v", i, err)
			return
		}
	}
}

// sendAll sends messages 0..n-1 from workers goroutines at once, and
// calls kill (once) when message killAt is due, while the others go on
// sending.
func (s *sender) sendAll(t *testing.T, n, workers, killAt int, kill func()) {
	var (
		next atomic.Int64
		once sync.Once
		wg   sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || t.Failed() {
					return
				}
				if i == killAt {
					once.Do(kill)
				}
				s.send(t, i)
			}
		})
	}
	wg.Wait()
}

// keep keeps Bob connected: it reads on one relay after another from
// opts, moving on whenever a session fails (as an app reconnects), until
// the test ends.
func (r *receiver) keep(t *testing.T, bob *client.Credentials, opts ...client.Options) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for k := 0; ctx.Err() == nil; k++ {
			o := opts[k%len(opts)]
			dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
			c, err := client.Dial(dctx, &o)
			if err == nil {
				if _, err = c.Authenticate(dctx, bob, 64); err == nil {
					_ = r.run(ctx, c)
				}
				c.Close()
			}
			dcancel()
		}
	}()
}

// TestClusterRelayKilled: three relays on a three-node JetStream cluster.
// Bob reads on relay A; Alice sends through relays B and C. Relay A is
// killed (SIGKILL) in the middle; Bob reconnects to relay B and receives
// every message that was accepted, before and after.
func TestClusterRelayKilled(t *testing.T) {
	nc := startNATSCluster(t, 3)
	store := append(nc.storeFlags(), "-nats-replicas", "3", "-media", "off", "-send-burst", "100000")
	ra := startRelayProc(t, t.TempDir(), store...)
	rb := startRelayProc(t, t.TempDir(), store...)
	rc := startRelayProc(t, t.TempDir(), store...)
	alice, bob := registerProc(t, rb.opts), registerProc(t, rc.opts)
	s := &sender{bob: bob, accepted: map[string]bool{},
		sessions: []*client.Conn{sessionProc(t, rb.opts, alice, 0), sessionProc(t, rc.opts, alice, 0)}}
	// A killed relay sends no close: Bob's client notices when the QUIC
	// idle timeout (three keep-alive periods) passes. Shorten it so the
	// test does not wait a minute.
	quick := ra.opts
	quick.KeepAlive = time.Second
	r := newReceiver()
	r.keep(t, bob, quick, rb.opts, rc.opts)

	const n, killAt = 600, 200
	s.sendAll(t, n, 8, killAt, func() {
		if err := ra.kill(t, syscall.SIGKILL); err == nil {
			t.Error("relay A exited cleanly after SIGKILL")
		}
	})
	distinct, repeats := r.waitAll(t, s.accepted)
	t.Logf("relay A (Bob's) killed after %d of %d sends from 8 senders; %d attempts, %d failed; accepted %d, delivered %d distinct (%d again: at-least-once)",
		killAt, n, s.attempts, s.failures, len(s.accepted), distinct, repeats)
	if distinct != n {
		t.Fatalf("delivered %d distinct messages, want %d", distinct, n)
	}
}

// TestClusterNATSNodeKilled: two relays on a three-node JetStream
// cluster. In the middle of the sends the NATS node that leads the queue
// stream is shut down. Sends may fail while a new leader is elected; the
// sender tries each again with the same id until it is accepted. Every
// accepted message is delivered, and the service continues on two nodes.
func TestClusterNATSNodeKilled(t *testing.T) {
	cl := startNATSCluster(t, 3)
	store := append(cl.storeFlags(), "-nats-replicas", "3", "-media", "off", "-send-burst", "100000")
	ra := startRelayProc(t, t.TempDir(), store...)
	rb := startRelayProc(t, t.TempDir(), store...)
	rc := startRelayProc(t, t.TempDir(), store...)
	alice, bob := registerProc(t, ra.opts), registerProc(t, rb.opts)
	s := &sender{bob: bob, accepted: map[string]bool{},
		sessions: []*client.Conn{sessionProc(t, ra.opts, alice, 0), sessionProc(t, rc.opts, alice, 0)}}
	r := newReceiver()
	r.keep(t, bob, rb.opts, ra.opts, rc.opts)

	const n, killAt = 600, 200
	var killed string
	s.sendAll(t, n, 8, killAt, func() { killed = cl.killStreamLeader(t, "PIGEONHOLE_QUEUES") })
	distinct, repeats := r.waitAll(t, s.accepted)
	t.Logf("NATS node %s (the queue stream's leader) shut down after %d of %d sends from 8 senders; %d attempts, %d failed; accepted %d, delivered %d distinct (%d repeated)",
		killed, killAt, n, s.attempts, s.failures, len(s.accepted), distinct, repeats)
	if distinct != n {
		t.Fatalf("delivered %d distinct messages, want %d", distinct, n)
	}
}

// killStreamLeader shuts down the node that leads the stream and returns
// its name. It may run on a sender's goroutine, so it reports with Error.
func (c *natsCluster) killStreamLeader(t *testing.T, stream string) string {
	t.Helper()
	nc, err := nats.Connect(c.urls(), nats.UserInfo(testNATSUser, testNATSPassword))
	if err != nil {
		t.Error(err)
		return ""
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Error(err)
		return ""
	}
	st, err := js.Stream(testCtx(t), stream)
	if err != nil {
		t.Error(err)
		return ""
	}
	info, err := st.Info(testCtx(t))
	if err != nil || info.Cluster == nil || info.Cluster.Leader == "" {
		t.Errorf("stream %s has no leader: %+v %v", stream, info, err)
		return ""
	}
	for _, ns := range c.servers {
		if ns.Name() == info.Cluster.Leader {
			ns.Shutdown()
			ns.WaitForShutdown()
			return ns.Name()
		}
	}
	t.Errorf("leader %s is not one of the cluster's servers", info.Cluster.Leader)
	return ""
}
