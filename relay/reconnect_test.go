package relay_test

import (
	"testing"
	"time"

	"github.com/pigeonhole/pigeonhole/queue"
	"github.com/pigeonhole/pigeonhole/relay/client"
)

// TestClientReconnectsWithBackoff stops the relay under a connected
// client.Client, restarts it on the same address and data, and checks the
// client reconnects by itself and receives what was sent meanwhile, and
// that Close interrupts a client that is waiting to reconnect.
func TestClientReconnectsWithBackoff(t *testing.T) {
	dir := t.TempDir()
	r := startRelayIn(t, testConfig(), queue.Config{}, dir, "127.0.0.1:0")
	addr := r.opts.Addr
	alice, bob := r.register(t, 0), r.register(t, 0)
	bc := client.New(&r.opts, bob.creds(), 16)
	bc.MinBackoff, bc.MaxBackoff = 5*time.Millisecond, 50*time.Millisecond
	defer bc.Close()
	if ev, err := bc.Next(ctxT(t)); err != nil || ev.Kind == client.EventEnvelope {
		t.Fatalf("first event: %v %v", ev, err)
	}
	r.stop(t)

	// The relay is down: the client keeps trying in the background.
	got := make(chan *client.Event, 1)
	errs := make(chan error, 1)
	go func() {
		for {
			ev, err := bc.Next(ctxT(t))
			if err != nil {
				errs <- err
				return
			}
			if ev.Kind == client.EventEnvelope {
				got <- ev
				return
			}
		}
	}()
	r = startRelayIn(t, testConfig(), queue.Config{}, dir, addr)
	ac := r.session(t, alice, 0)
	if _, err := sendText(t, ac, bob, []uint32{1}, "while you were away"); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-got:
		if string(ev.Envelope.Content) != "while you were away" {
			t.Fatalf("got %q", ev.Envelope.Content)
		}
		if err := bc.Ack(ev.Envelope.Seq); err != nil {
			t.Fatal(err)
		}
	case err := <-errs:
		t.Fatalf("client gave up: %v", err)
	case <-ctxT(t).Done():
		t.Fatal("client did not reconnect")
	}

	// Close interrupts a client waiting for a relay that is gone.
	r.stop(t)
	go func() {
		_, err := bc.Next(ctxT(t))
		errs <- err
	}()
	bc.Close()
	select {
	case err := <-errs:
		if err == nil {
			t.Fatal("Next after Close returned no error")
		}
	case <-ctxT(t).Done():
		t.Fatal("Close did not interrupt the reconnect loop")
	}
}

// TestClientReconnectsAfterLongDrain: a client.Client with the default
// backoff (as `pigeon listen` runs it) hears the going-away close at once
// and dials again while the relay is still draining another connection
// (held open here for the whole grace by a stream whose first frame
// never comes, as a busy relay's drain lasts). That dial must not end up
// on a connection the draining relay completed but never serves, which
// would hang until the idle timeout (a minute): after the restart on the
// same address, what was sent meanwhile arrives within 15 s.
func TestClientReconnectsAfterLongDrain(t *testing.T) {
	cfg := testConfig()
	cfg.ShutdownGrace = 2 * time.Second
	dir := t.TempDir()
	r := startRelayIn(t, cfg, queue.Config{}, dir, "127.0.0.1:0")
	addr := r.opts.Addr
	alice, bob := r.register(t, 0), r.register(t, 0)
	bc := client.New(&r.opts, bob.creds(), 16)
	defer bc.Close()
	for {
		ev, err := bc.Next(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		if ev.Kind == client.EventDrained {
			break
		}
	}
	got := make(chan *client.Envelope, 1)
	errs := make(chan error, 1)
	go func() {
		for {
			ev, err := bc.Next(ctxT(t))
			if err != nil {
				errs <- err
				return
			}
			if ev.Kind == client.EventEnvelope {
				got <- ev.Envelope
				return
			}
		}
	}()
	start := time.Now()
	startShutdown(t, r) // Bob's connection is idle: closed at once
	r.stop(t)
	t.Logf("relay drained in %v", time.Since(start))
	r = startRelayIn(t, cfg, queue.Config{}, dir, addr)
	ac := r.session(t, alice, 0)
	if _, err := sendText(t, ac, bob, []uint32{1}, "after the drain"); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	deadline := time.NewTimer(15 * time.Second)
	defer deadline.Stop()
	select {
	case env := <-got:
		if string(env.Content) != "after the drain" {
			t.Fatalf("got %q", env.Content)
		}
		t.Logf("delivered %v after the send to the restarted relay", time.Since(sent))
	case err := <-errs:
		t.Fatalf("client gave up: %v", err)
	case <-deadline.C:
		t.Fatal("no delivery within 15 s of the restart: the client is stuck on a connection of the drained relay")
	}
}
