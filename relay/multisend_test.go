package relay_test

import (
	"testing"
	"time"

	"github.com/pigeonhole/pigeonhole/queue"
	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/spec"
)

func devMsgs(ids []uint32, body string) []client.DeviceMessage {
	out := make([]client.DeviceMessage, len(ids))
	for i, id := range ids {
		out[i] = client.DeviceMessage{DeviceID: id, Type: 2, Content: []byte(body)}
	}
	return out
}

func (r *testRelay) depth(t *testing.T, d *device, id uint32) int {
	t.Helper()
	n, _, err := r.queues.Depth(queue.Address{Account: [16]byte(d.AccountID), Device: id})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestMultiSend: one request reaches every device of several accounts;
// a stale list for any account refuses all of it and names every stale
// account; nothing is stored then.
func TestMultiSend(t *testing.T) {
	r := startRelay(t, testConfig())
	alice, bob, carol := r.register(t, 1), r.register(t, 1), r.register(t, 1)
	a1 := r.session(t, alice, 0)
	b1c := r.session(t, bob, 0)
	bob2 := r.link(t, bob, b1c)

	_, err := a1.SendMulti(ctxT(t), &client.MultiMessage{ClientMessageID: randomID(t), Accounts: []client.AccountMessage{
		{Recipient: bob.AccountID, Devices: devMsgs([]uint32{1}, "x")},
		{Recipient: carol.AccountID, Devices: devMsgs([]uint32{1, 5}, "x")},
	}})
	ce := wantCode(t, err, spec.CodeStaleDevices)
	if len(ce.Stale) != 2 || len(ce.Stale[0].Missing) != 1 || ce.Stale[0].Missing[0] != 2 || len(ce.Stale[1].Extra) != 1 || ce.Stale[1].Extra[0] != 5 {
		t.Fatalf("stale accounts %+v", ce.Stale)
	}
	if r.depth(t, carol, 1) != 0 {
		t.Fatal("a refused multi-send stored something")
	}

	res, err := a1.SendMulti(ctxT(t), &client.MultiMessage{ClientMessageID: randomID(t), Accounts: []client.AccountMessage{
		{Recipient: bob.AccountID, Devices: devMsgs([]uint32{1, 2}, "group hello")},
		{Recipient: carol.AccountID, Devices: devMsgs([]uint32{1}, "group hello")},
	}})
	if err != nil || res.Duplicate {
		t.Fatalf("multi-send: %+v, %v", res, err)
	}
	for _, c := range []struct {
		d  *device
		id uint32
	}{{bob, 1}, {bob2, 2}, {carol, 1}} {
		s := r.session(t, c.d, 4)
		if env := nextEnvelope(t, s); string(env.Content) != "group hello" {
			t.Fatalf("device %d got %q", c.id, env.Content)
		}
	}
	_, err = a1.SendMulti(ctxT(t), &client.MultiMessage{ClientMessageID: randomID(t), Accounts: []client.AccountMessage{
		{Recipient: bob.AccountID, Devices: devMsgs([]uint32{1, 2}, "x")},
		{Recipient: bob.AccountID, Devices: devMsgs([]uint32{1, 2}, "x")},
	}})
	wantCode(t, err, spec.CodeBadRequest)
}

func TestMultiSendDeviceCap(t *testing.T) {
	cfg := testConfig()
	cfg.MaxMultiDevices = 2
	r := startRelay(t, cfg)
	alice, bob, carol := r.register(t, 1), r.register(t, 1), r.register(t, 1)
	a1 := r.session(t, alice, 0)
	_, err := a1.SendMulti(ctxT(t), &client.MultiMessage{ClientMessageID: randomID(t), Accounts: []client.AccountMessage{
		{Recipient: bob.AccountID, Devices: devMsgs([]uint32{1}, "x")},
		{Recipient: carol.AccountID, Devices: devMsgs([]uint32{1}, "x")},
		{Recipient: alice.AccountID, Devices: devMsgs([]uint32{2}, "x")},
	}})
	wantCode(t, err, spec.CodeBadRequest)
}

// TestOnlineOnly: an online-only send reaches connected devices (seq 0,
// nothing to ack), says how many, and leaves offline devices' queues empty
// and unpushed.
func TestOnlineOnly(t *testing.T) {
	r, apns := startPushRelay(t, time.Hour)
	alice, bob, carol := r.register(t, 1), r.register(t, 1), r.register(t, 1)
	carolTok := r.pushToken(t, carol)
	bs := r.session(t, bob, 16)
	nextKind(t, bs, client.EventDrained)
	a1 := r.session(t, alice, 0)

	res, err := a1.SendMulti(ctxT(t), &client.MultiMessage{ClientMessageID: randomID(t), OnlineOnly: true, Accounts: []client.AccountMessage{
		{Recipient: bob.AccountID, Devices: devMsgs([]uint32{1}, "typing")},
		{Recipient: carol.AccountID, Devices: devMsgs([]uint32{1}, "typing")},
	}})
	if err != nil || res.Reached != 1 {
		t.Fatalf("online-only multi-send: %+v, %v", res, err)
	}
	env := nextEnvelope(t, bs)
	if string(env.Content) != "typing" || env.Seq != 0 {
		t.Fatalf("online envelope %q seq %d", env.Content, env.Seq)
	}
	// A client that acks it anyway (seq 0) does no harm.
	if err := bs.Ack(env.Seq); err != nil {
		t.Fatal(err)
	}
	if _, err := sendText(t, a1, bob, []uint32{1}, "stored"); err != nil {
		t.Fatal(err)
	}
	if env := nextEnvelope(t, bs); string(env.Content) != "stored" || env.Seq == 0 {
		t.Fatalf("after an ack of seq 0: %q seq %d", env.Content, env.Seq)
	}
	single, err := a1.Send(ctxT(t), &client.Message{Recipient: carol.AccountID, ClientMessageID: randomID(t), OnlineOnly: true,
		Devices: devMsgs([]uint32{1}, "typing")})
	if err != nil || single.Reached != 0 {
		t.Fatalf("online-only send to an offline device: %+v, %v", single, err)
	}
	if r.depth(t, carol, 1) != 0 {
		t.Fatal("an online-only message was queued")
	}
	// Carol's first push comes from a real message, not the signals.
	if _, err := sendText(t, a1, carol, []uint32{1}, "real"); err != nil {
		t.Fatal(err)
	}
	if req := apns.Next(t, 10*time.Second); req.Token != carolTok {
		t.Fatalf("push to %s", req.Token)
	}
	if n := apns.Count(); n != 1 {
		t.Fatalf("APNs saw %d pushes, want 1 (online-only sends push nothing)", n)
	}
}
