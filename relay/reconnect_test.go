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
