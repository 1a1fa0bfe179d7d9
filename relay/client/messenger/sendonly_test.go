package messenger

import (
	"errors"
	"testing"
)

// TestSendOnly checks that a send-only Messenger sends but never counts
// as a receiving device: an online-only send to its account reaches no
// one (the relay would otherwise count it connected, and skip pushes),
// and Run refuses.
func TestSendOnly(t *testing.T) {
	r := newRelay(t)
	alice, bob := register(t, r), register(t, r)
	ctx := ctxT(t)
	cfg := r.cfg
	cfg.SendOnly = true
	bobSend, err := Open(bob.dir, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer bobSend.Close()
	if _, err := bobSend.Send(ctx, alice.AccountID(), &Content{Text: "from a send-only device"}); err != nil {
		t.Fatal(err)
	}
	// bobSend's connection is up now (it just sent).
	res, err := alice.SendTyping(ctx, bob.AccountID(), true)
	if err != nil {
		t.Fatal(err)
	}
	if res.Devices != 1 || res.Reached != 0 {
		t.Fatalf("typing to a device that is only connected send-only: %+v, want 1 device, 0 reached", res)
	}
	if err := bobSend.Run(ctx, bob.rec); !errors.Is(err, ErrSendOnly) {
		t.Fatalf("Run on a send-only Messenger: %v, want ErrSendOnly", err)
	}
	alice.run(t)
	nextMessage(t, alice.rec, "from a send-only device")
}
