package messenger

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

// TestAckAfterHandler: a handler error leaves the envelope queued; it
// comes again on a new connection, and once taken it is acked: a fresh
// Messenger on the same device finds nothing left.
func TestAckAfterHandler(t *testing.T) {
	r := newRelay(t)
	alice, bob := register(t, r), register(t, r)
	ctx := ctxT(t)
	failures := 0
	bob.rec.fail = func(m *Message) error {
		if m.Text == "keep me" && failures < 2 {
			failures++
			return errors.New("database full")
		}
		return nil
	}
	bob.run(t)
	res, err := alice.Send(ctx, bob.AccountID(), &Content{Text: "keep me"})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		next[error](t, bob.rec)
	}
	if m := nextMessage(t, bob.rec, "keep me"); !bytes.Equal(m.ID, res.ID) {
		t.Fatalf("got %+v", m)
	}
	// The delivered receipt comes only after the handler took it.
	if rc := next[*Receipt](t, alice.rec.runFor(t, alice)); !bytes.Equal(rc.ID(0), res.ID) {
		t.Fatalf("receipt %+v", rc)
	}
	bob.Close()
	again, err := OpenStore(mustOpenDir(t, bob.dir), &r.cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	rec := newRecorder()
	if err := again.RunUntilDrained(ctx, rec); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-rec.events:
		if m, ok := ev.(*Message); ok {
			t.Fatalf("the acked message came again: %+v", m)
		}
	default:
	}
}

// runFor starts d receiving into r (once) and returns r.
func (r *recorder) runFor(t *testing.T, d *device) *recorder {
	d.run(t)
	return r
}

func mustOpenDir(t *testing.T, dir string) *DirStore {
	t.Helper()
	s, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestReconnectAfterRelayRestart: Bob's Run keeps going through a relay
// restart (reporting the outage) and receives what Alice sends after it.
func TestReconnectAfterRelayRestart(t *testing.T) {
	dir := t.TempDir()
	r, err := startTestRelay(dir, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.stop() })
	alice, bob := register(t, r), register(t, r)
	bob.run(t)
	ctx := ctxT(t)
	if _, err := alice.Send(ctx, bob.AccountID(), &Content{Text: "before"}); err != nil {
		t.Fatal(err)
	}
	nextMessage(t, bob.rec, "before")
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if c := next[connState](t, bob.rec); c.connected {
		t.Fatal("connected while the relay is down")
	}
	r2, err := startTestRelay(dir, r.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r2.stop() })
	if c := next[connState](t, bob.rec); !c.connected {
		t.Fatal("no reconnection reported")
	}
	sctx, cancel := context.WithTimeout(ctx, patience)
	defer cancel()
	if _, err := alice.Send(sctx, bob.AccountID(), &Content{Text: "after"}); err != nil {
		t.Fatal(err)
	}
	nextMessage(t, bob.rec, "after")
}

// TestSignedPreKeyRotation: a due rotation replaces the signed prekey at
// the relay, and a new contact starts a session with it.
func TestSignedPreKeyRotation(t *testing.T) {
	r := newRelay(t)
	alice, bob := register(t, r), register(t, r)
	ctx := ctxT(t)
	if err := bob.rotateIfDue(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	ids, _ := bob.store.(*DirStore).SignedPreKeyIDs()
	if len(ids) != 1 {
		t.Fatalf("rotated before it was due: signed prekeys %v", ids)
	}
	if err := bob.rotateIfDue(ctx, time.Now().Add(8*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	var keys []uint32
	err := alice.conn(ctx, func(c *clientConn) error {
		k, err := c.FetchKeys(ctx, bob.AccountID())
		if err == nil {
			keys = append(keys, k.Devices[0].SignedPreKey.ID)
		}
		return err
	})
	if err != nil || len(keys) != 1 || keys[0] != 2 {
		t.Fatalf("relay has signed prekey %v (%v), want 2", keys, err)
	}
	bob.run(t)
	if _, err := alice.Send(ctx, bob.AccountID(), &Content{Text: "new key"}); err != nil {
		t.Fatal(err)
	}
	nextMessage(t, bob.rec, "new key")
}
