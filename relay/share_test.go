package relay_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pigeonhole/pigeonhole/queue"
	"github.com/pigeonhole/pigeonhole/relay"
	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/spec"
)

// TestSenderQueueShare: a stranger floods an offline victim's device
// through a real relay. Past its share the stranger gets
// SENDER_QUEUE_SHARE (a send and a group send alike, which then store
// nothing for anyone), while a friend's send to the same device is still
// accepted. Once the victim has fetched and acked, the stranger's share
// is free again.
func TestSenderQueueShare(t *testing.T) {
	const share = 10
	r := startRelayWith(t, testConfig(), queue.Config{MaxCount: 100, SenderMaxCount: share})
	attacker, victim, friend, other := r.register(t, 0), r.register(t, 0), r.register(t, 0), r.register(t, 0)
	ac := r.session(t, attacker, 0)
	for i := range share {
		if _, err := sendText(t, ac, victim, []uint32{1}, fmt.Sprintf("flood %d", i)); err != nil {
			t.Fatalf("flood message %d: %v", i, err)
		}
	}
	_, err := sendText(t, ac, victim, []uint32{1}, "one too many")
	ce := wantCode(t, err, spec.CodeSenderShare)
	if !strings.Contains(ce.Message, "share") {
		t.Fatalf("the error does not name the share: %q", ce.Message)
	}
	// A group send naming the victim is refused whole.
	_, err = ac.SendMulti(ctxT(t), &client.MultiMessage{ClientMessageID: randomID(t), Accounts: []client.AccountMessage{
		{Recipient: other.AccountID, Devices: devMsgs([]uint32{1}, "group")},
		{Recipient: victim.AccountID, Devices: devMsgs([]uint32{1}, "group")},
	}})
	wantCode(t, err, spec.CodeSenderShare)
	if n := r.depth(t, other, 1); n != 0 {
		t.Fatalf("a refused group send stored %d messages for another account", n)
	}
	if n := r.depth(t, victim, 1); n != share {
		t.Fatalf("victim's queue holds %d, want the %d of the share", n, share)
	}

	// The victim's friend is not locked out.
	fc := r.session(t, friend, 0)
	if _, err := sendText(t, fc, victim, []uint32{1}, "hello from a friend"); err != nil {
		t.Fatalf("a friend's send to the flooded device: %v", err)
	}

	// The victim comes online, receives everything and acks it: the
	// stranger may send again.
	vc := r.session(t, victim, 64)
	for i := range share + 1 {
		env := nextEnvelope(t, vc)
		want := fmt.Sprintf("flood %d", i)
		if i == share {
			want = "hello from a friend"
		}
		if string(env.Content) != want {
			t.Fatalf("envelope %d is %q, want %q", i, env.Content, want)
		}
		if err := vc.Ack(env.Seq); err != nil {
			t.Fatal(err)
		}
	}
	// A clean finish returns once the relay has applied every ack.
	if err := vc.Finish(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if n := r.depth(t, victim, 1); n != 0 {
		t.Fatalf("after its acks the victim's queue holds %d", n)
	}
	if _, err := sendText(t, ac, victim, []uint32{1}, "after the acks"); err != nil {
		t.Fatalf("after the victim fetched its mail: %v", err)
	}
}

// TestSendRateLimit: an account's sends (send and multi_send) are limited
// by a token bucket; past it the relay answers RATE_LIMITED with
// retry_after_ms, and other accounts are not affected.
func TestSendRateLimit(t *testing.T) {
	cfg := testConfig()
	cfg.SendLimit = relay.Limit{Burst: 3, Every: time.Hour}
	r := startRelay(t, cfg)
	alice, bob, carol := r.register(t, 0), r.register(t, 0), r.register(t, 0)
	ac := r.session(t, alice, 0)
	for i := range 2 {
		if _, err := sendText(t, ac, bob, []uint32{1}, fmt.Sprint(i)); err != nil {
			t.Fatalf("send %d within the burst: %v", i, err)
		}
	}
	if _, err := ac.SendMulti(ctxT(t), &client.MultiMessage{ClientMessageID: randomID(t), Accounts: []client.AccountMessage{
		{Recipient: bob.AccountID, Devices: devMsgs([]uint32{1}, "group")},
		{Recipient: carol.AccountID, Devices: devMsgs([]uint32{1}, "group")},
	}}); err != nil {
		t.Fatalf("group send within the burst: %v", err)
	}
	for _, send := range []func() error{
		func() error { _, err := sendText(t, ac, bob, []uint32{1}, "over"); return err },
		func() error {
			_, err := ac.SendMulti(ctxT(t), &client.MultiMessage{ClientMessageID: randomID(t), Accounts: []client.AccountMessage{
				{Recipient: bob.AccountID, Devices: devMsgs([]uint32{1}, "over")},
			}})
			return err
		},
	} {
		ce := wantCode(t, send(), spec.CodeRateLimited)
		if ce.RetryAfterMillis == 0 || time.Duration(ce.RetryAfterMillis)*time.Millisecond > time.Hour {
			t.Fatalf("retry_after_ms %d, want up to an hour", ce.RetryAfterMillis)
		}
	}
	if n := r.depth(t, bob, 1); n != 3 {
		t.Fatalf("bob's queue holds %d, want the 3 accepted", n)
	}
	// Another account has its own bucket.
	bc := r.session(t, bob, 0)
	if _, err := sendText(t, bc, carol, []uint32{1}, "from bob"); err != nil {
		t.Fatalf("another account's send: %v", err)
	}
}
