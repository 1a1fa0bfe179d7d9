package messenger

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pigeonhole/pigeonhole/relay/client"
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
	alice := register(t, r)
	// Bob keeps one one-time prekey of each kind, so the second bundle
	// fetched carries his last-resort KEM prekey.
	cfg := r.cfg
	cfg.PreKeys = 1
	bob := register(t, &testRelay{cfg: cfg})
	ctx := ctxT(t)
	// The first look starts the week; the next within it does nothing.
	for range 2 {
		if rotated, err := bob.RotateKeysIfDue(ctx); err != nil || rotated {
			t.Fatalf("rotated %v (%v) before it was due", rotated, err)
		}
	}
	ids, _ := bob.store.(*DirStore).SignedPreKeyIDs()
	if len(ids) != 1 {
		t.Fatalf("rotated before it was due: signed prekeys %v", ids)
	}
	if rotated, err := bob.rotateIfDue(ctx, time.Now().Add(8*24*time.Hour)); err != nil || !rotated {
		t.Fatalf("rotated %v (%v) when due", rotated, err)
	}
	var keys []uint32
	var kem *client.KemPreKey
	err := alice.conn(ctx, func(c *clientConn) error {
		for range 2 {
			k, err := c.FetchKeys(ctx, bob.AccountID())
			if err != nil {
				return err
			}
			keys = append(keys, k.Devices[0].SignedPreKey.ID)
			if k.Devices[0].KemLastResort {
				kem = k.Devices[0].KemPreKey
			}
		}
		return nil
	})
	if err != nil || len(keys) != 2 || keys[0] != 2 || keys[1] != 2 {
		t.Fatalf("relay has signed prekeys %v (%v), want 2", keys, err)
	}
	// Bob has not run since, so his one one-time KEM prekey went with
	// the first bundle: the second carries his last-resort one, which is
	// the new one (id 1 was made at registration).
	if kem == nil || kem.ID == 1 {
		t.Fatalf("bundle's last-resort KEM prekey %v, want the rotated one", kem)
	}
	bob.run(t)
	if _, err := alice.Send(ctx, bob.AccountID(), &Content{Text: "new key"}); err != nil {
		t.Fatal(err)
	}
	nextMessage(t, bob.rec, "new key")
}

// TestLastResortKEMRotation: each rotation replaces the last-resort KEM
// prekey, and only the newest two (the relay's and the one before) keep
// their private parts.
func TestLastResortKEMRotation(t *testing.T) {
	r := newRelay(t)
	bob := register(t, r)
	ctx := ctxT(t)
	var made []uint32
	if _, err := bob.RotateKeysIfDue(ctx); err != nil { // starts the schedule
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := bob.rotateIfDue(ctx, time.Now().Add(time.Duration(i+1)*8*24*time.Hour)); err != nil {
			t.Fatal(err)
		}
		b, err := bob.store.Get(lastResortKey)
		if err != nil {
			t.Fatal(err)
		}
		ids := strings.Split(string(b), ",")
		id, _ := strconv.ParseUint(ids[len(ids)-1], 10, 32)
		made = append(made, uint32(id))
	}
	have := func(id uint32) bool {
		_, err := os.Stat(filepath.Join(bob.dir, "kemprekeys", strconv.FormatUint(uint64(id), 10)))
		return err == nil
	}
	if have(made[0]) || !have(made[1]) || !have(made[2]) {
		t.Fatalf("last-resort KEM prekeys %v on disk: %v %v %v, want only the newest two", made, have(made[0]), have(made[1]), have(made[2]))
	}
}
