package relay_test

import (
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"
)

// TestPushTokenOnOneDevice: one APNs token registered on 8 accounts'
// devices wakes only the device that registered it last, and moving it
// back or clearing it follows. Before, each account had its own copy, so
// one token received a push per account per window (8 accounts gave
// ~2,000 pushes a minute to one phone).
func TestPushTokenOnOneDevice(t *testing.T) {
	r, a := startPushRelay(t, time.Hour)
	alice := r.register(t, 1)
	ac := r.session(t, alice, 0)
	tok := make([]byte, 32)
	rand.Read(tok)
	want := hex.EncodeToString(tok)

	const n = 8
	var devs []*device
	for range n {
		d := r.register(t, 1)
		c := r.session(t, d, 0)
		if err := c.SetAPNsToken(ctxT(t), tok, pushTopic, false); err != nil {
			t.Fatal(err)
		}
		c.Close()
		devs = append(devs, d)
	}
	queued := func() float64 { return r.counter(t, "pigeonhole_push_queued_total") }
	mailAll := func() {
		t.Helper()
		for _, d := range devs {
			if _, err := sendText(t, ac, d, []uint32{1}, "hi"); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Whether a push is queued is decided before a send is answered, so
	// the counter is exact once the sends return.
	mailAll()
	if got := queued(); got != 1 {
		t.Fatalf("mail to %d accounts sharing one token queued %v pushes, want 1", n, got)
	}
	if req := a.Next(t, 10*time.Second); req.Token != want || req.Status != 200 {
		t.Fatalf("push went to %s… (status %d), want the shared token", req.Token[:8], req.Status)
	}

	// The first device takes it back: it alone is woken now (its window
	// is fresh, the last device's is spent).
	c := r.session(t, devs[0], 0)
	if err := c.SetAPNsToken(ctxT(t), tok, pushTopic, false); err != nil {
		t.Fatal(err)
	}
	c.Close()
	mailAll()
	if got := queued(); got != 2 {
		t.Fatalf("after moving the token back: %v pushes queued in all, want 2", got)
	}
	if req := a.Next(t, 10*time.Second); req.Token != want {
		t.Fatalf("push went to %s…", req.Token[:8])
	}
	// Cleared on the device that holds it, the token wakes nobody: no
	// other device's old registration comes back.
	c = r.session(t, devs[0], 0)
	if err := c.ClearPushToken(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	mailAll()
	if got := queued(); got != 2 {
		t.Fatalf("after clearing the token: %v pushes queued in all, want 2", got)
	}
	if c := a.Count(); c != 2 {
		t.Errorf("APNs saw %d pushes, want 2", c)
	}
}
