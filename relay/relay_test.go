package relay_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/spec"
)

func wantCode(t *testing.T, err error, code spec.Code) *client.Error {
	t.Helper()
	var e *client.Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v, want relay error %s", err, code)
	}
	if spec.Code(e.Code) != code {
		t.Fatalf("got code %s (%s), want %s", spec.Code(e.Code), e.Message, code)
	}
	if e.Message == "" {
		t.Fatalf("error %s has no sentence", code)
	}
	return e
}

func sendText(t *testing.T, c *client.Conn, to *device, devs []uint32, body string) (*client.SendResult, error) {
	t.Helper()
	m := &client.Message{Recipient: to.AccountID, ClientMessageID: randomID(t)}
	for _, d := range devs {
		m.Devices = append(m.Devices, client.DeviceMessage{DeviceID: d, Type: 2, Content: []byte(body)})
	}
	return c.Send(ctxT(t), m)
}

func TestSendDeliverAck(t *testing.T) {
	r := startRelay(t, testConfig())
	alice, bob := r.register(t, 5), r.register(t, 5)
	bc := r.session(t, bob, 16)
	nextKind(t, bc, client.EventDrained) // empty queue
	ac := r.session(t, alice, 0)

	ks, err := ac.FetchKeys(ctxT(t), bob.AccountID)
	if err != nil {
		t.Fatal(err)
	}
	if len(ks.Devices) != 1 || ks.Devices[0].DeviceID != 1 || ks.Devices[0].PreKey == nil {
		t.Fatalf("bundle = %+v", ks.Devices)
	}
	if !bytes.Equal(ks.Devices[0].IdentityKey, bob.identity.PublicKey().Serialize()) {
		t.Fatal("fetched identity key is not bob's")
	}
	cmid := randomID(t)
	res, err := ac.Send(ctxT(t), &client.Message{Recipient: bob.AccountID, ClientMessageID: cmid,
		Devices: []client.DeviceMessage{{DeviceID: 1, Type: 3, Content: []byte("ciphertext-1")}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Duplicate || res.TimestampMillis == 0 {
		t.Fatalf("send result %+v", res)
	}
	// Bob is connected: the envelope arrives without polling.
	env := nextEnvelope(t, bc)
	if !bytes.Equal(env.Sender, alice.AccountID) || env.SenderDevice != 1 || env.Type != 3 ||
		string(env.Content) != "ciphertext-1" || !bytes.Equal(env.ClientMessageID, cmid) ||
		env.TimestampMillis != res.TimestampMillis || env.Seq == 0 {
		t.Fatalf("envelope %+v", env)
	}
	if err := bc.Ack(env.Seq); err != nil {
		t.Fatal(err)
	}
	if err := bc.Finish(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	// Acked: a new session finds the queue empty.
	bc2 := r.session(t, bob, 16)
	nextKind(t, bc2, client.EventDrained)
}

func TestRedeliveryAfterReconnect(t *testing.T) {
	r := startRelay(t, testConfig())
	alice, bob := r.register(t, 0), r.register(t, 0)
	ac := r.session(t, alice, 0)
	for _, s := range []string{"one", "two", "three"} {
		if _, err := sendText(t, ac, bob, []uint32{1}, s); err != nil {
			t.Fatal(err)
		}
	}
	bc := r.session(t, bob, 16)
	var first []*client.Envelope
	for range 3 {
		first = append(first, nextEnvelope(t, bc))
	}
	if err := bc.Ack(first[0].Seq); err != nil { // ack only the first
		t.Fatal(err)
	}
	if err := bc.Finish(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	bc2 := r.session(t, bob, 16)
	for _, want := range first[1:] {
		got := nextEnvelope(t, bc2)
		if got.Seq != want.Seq || string(got.Content) != string(want.Content) {
			t.Fatalf("redelivered %d %q, want %d %q", got.Seq, got.Content, want.Seq, want.Content)
		}
	}
	nextKind(t, bc2, client.EventDrained)
}

func TestWindowBoundsInFlight(t *testing.T) {
	r := startRelay(t, testConfig())
	alice, bob := r.register(t, 0), r.register(t, 0)
	ac := r.session(t, alice, 0)
	for range 10 {
		if _, err := sendText(t, ac, bob, []uint32{1}, "m"); err != nil {
			t.Fatal(err)
		}
	}
	bc := r.session(t, bob, 3)
	var seqs []uint64
	for range 3 {
		seqs = append(seqs, nextEnvelope(t, bc).Seq)
	}
	if err := bc.Ack(seqs[0]); err != nil {
		t.Fatal(err)
	}
	fourth := nextEnvelope(t, bc)
	if fourth.Seq <= seqs[2] {
		t.Fatalf("fourth seq %d after %v", fourth.Seq, seqs)
	}
	// The relay wrote one envelope per freed slot: with a window of 3 and
	// one ack, four in all.
	if got := r.metric(t, "pigeonhole_envelopes_delivered_total"); got != 4 {
		t.Fatalf("relay delivered %v envelopes, want 4 (window 3 plus one ack)", got)
	}
}

func TestStaleDevices(t *testing.T) {
	r := startRelay(t, testConfig())
	alice, bob := r.register(t, 0), r.register(t, 0)
	ac := r.session(t, alice, 0)
	_, err := sendText(t, ac, bob, []uint32{2, 3}, "x")
	e := wantCode(t, err, spec.CodeStaleDevices)
	if len(e.Missing) != 1 || e.Missing[0] != 1 || len(e.Extra) != 2 || e.Extra[0] != 2 || e.Extra[1] != 3 {
		t.Fatalf("missing %v extra %v", e.Missing, e.Extra)
	}
	_, err = sendText(t, ac, bob, []uint32{1, 1}, "x")
	wantCode(t, err, spec.CodeDuplicateDevice)
}

func TestRetriedSendStoredOnce(t *testing.T) {
	r := startRelay(t, testConfig())
	alice, bob := r.register(t, 0), r.register(t, 0)
	ac := r.session(t, alice, 0)
	m := &client.Message{Recipient: bob.AccountID, ClientMessageID: randomID(t),
		Devices: []client.DeviceMessage{{DeviceID: 1, Type: 2, Content: []byte("once")}}}
	first, err := ac.Send(ctxT(t), m)
	if err != nil {
		t.Fatal(err)
	}
	again, err := ac.Send(ctxT(t), m)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Duplicate || again.TimestampMillis != first.TimestampMillis {
		t.Fatalf("retry = %+v, first = %+v", again, first)
	}
	bc := r.session(t, bob, 16)
	nextEnvelope(t, bc)
	nextKind(t, bc, client.EventDrained)
}

func TestShutdownClosesWithGoingAway(t *testing.T) {
	r := startRelay(t, testConfig())
	bob := r.register(t, 0)
	bc := r.session(t, bob, 16)
	nextKind(t, bc, client.EventDrained)
	r.cancel()
	_, err := bc.Next(ctxT(t))
	if err == nil {
		t.Fatal("session still open after shutdown")
	}
	if !isAppError(err, spec.CloseGoingAway) {
		t.Fatalf("next after shutdown: %v, want application error %d", err, spec.CloseGoingAway)
	}
}
