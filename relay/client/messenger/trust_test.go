package messenger

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/pigeonhole/pigeonhole/keys"
	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
)

var safetyNumberRE = regexp.MustCompile(`^(\d{5} ){11}\d{5}$`)

// addDevice plays the relay's operator: it makes a device with an
// identity key of its own in a new directory and adds it to account in
// the relay's key directory. It returns the device and its identity key.
func addDevice(t *testing.T, r *testRelay, account []byte) (*e2e.Device, []byte) {
	t.Helper()
	d, reg, err := e2e.Create(filepath.Join(t.TempDir(), "added"), 10)
	if err != nil {
		t.Fatal(err)
	}
	var a keys.AccountID
	copy(a[:], account)
	pks := make([]keys.PreKey, len(reg.PreKeys))
	for i, p := range reg.PreKeys {
		pks[i] = keys.PreKey{ID: p.ID, PublicKey: p.PublicKey}
	}
	id, err := r.keys.AddDevice(context.Background(), a, keys.Device{
		AuthKey:        ed25519.PrivateKey(reg.AuthKey).Public().(ed25519.PublicKey),
		IdentityKey:    reg.IdentityKey,
		RegistrationID: reg.RegistrationID,
		SignedPreKey:   keys.SignedPreKey{ID: reg.SignedPreKey.ID, PublicKey: reg.SignedPreKey.PublicKey, Signature: reg.SignedPreKey.Signature},
	}, pks)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Registered(account, id); err != nil {
		t.Fatal(err)
	}
	return d, reg.IdentityKey
}

// reinstall plays a reinstall of d: its device is closed and removed
// from the key directory, and one with a new identity key is added to
// its account (addDevice).
func reinstall(t *testing.T, r *testRelay, d *device) (*e2e.Device, []byte) {
	t.Helper()
	var a keys.AccountID
	copy(a[:], d.AccountID())
	d.Close()
	if err := r.keys.RemoveDevice(ctxT(t), a, uint32(d.DeviceID())); err != nil {
		t.Fatal(err)
	}
	return addDevice(t, r, d.AccountID())
}

// markVerified sends to account (so from learns its identity key) and
// marks the safety number verified.
func markVerified(t *testing.T, from *device, account []byte) *SafetyNumber {
	t.Helper()
	if _, err := from.Send(ctxT(t), account, &Content{Text: "hi"}); err != nil {
		t.Fatal(err)
	}
	sn, err := from.SafetyNumber(account)
	if err != nil {
		t.Fatal(err)
	}
	if err := from.MarkVerified(account, sn.Key); err != nil {
		t.Fatal(err)
	}
	return sn
}

func wantVerification(t *testing.T, m *Messenger, account []byte, state int, offered bool) {
	t.Helper()
	v, err := m.Verification(account)
	if err != nil {
		t.Fatal(err)
	}
	if v.State != state || v.Offered != offered {
		t.Fatalf("verification %+v, want state %d, offered %v", *v, state, offered)
	}
}

// TestSafetyNumberReinstall: Bob reinstalls (his device is replaced by
// one with a new identity key). Alice, who had marked his safety number
// compared, cannot send (ErrIdentityChanged); the binding surface shows
// the new number, refuses to accept any key but the one offered, and
// with that one (marked compared) the send goes, and Bob's new device
// shows the same number.
func TestSafetyNumberReinstall(t *testing.T) {
	r := newRelay(t)
	ctx := ctxT(t)
	alice, bob := register(t, r), register(t, r)
	if _, err := alice.SafetyNumber(bob.AccountID()); !errors.Is(err, ErrNoIdentityKey) {
		t.Fatalf("safety number before any exchange: %v", err)
	}
	if _, err := alice.Send(ctx, bob.AccountID(), &Content{Text: "hi"}); err != nil {
		t.Fatal(err)
	}
	sn, err := alice.SafetyNumber(bob.AccountID())
	if err != nil || !safetyNumberRE.MatchString(sn.Number) {
		t.Fatalf("safety number %+v, %v", sn, err)
	}
	wantVerification(t, alice.Messenger, bob.AccountID(), NotVerified, false)
	if err := alice.MarkVerified(bob.AccountID(), append([]byte{5}, make([]byte, 32)...)); !errors.Is(err, ErrNoOfferedKey) {
		t.Fatalf("marking another key verified: %v", err)
	}
	if err := alice.MarkVerified(bob.AccountID(), sn.Key); err != nil {
		t.Fatal(err)
	}
	wantVerification(t, alice.Messenger, bob.AccountID(), Verified, false)

	// Bob reinstalls: device 1 goes, a new one with a new key comes.
	newBob, newKey := reinstall(t, r, bob)
	if _, err := alice.Send(ctx, bob.AccountID(), &Content{Text: "to whom?"}); !errors.Is(err, ErrIdentityChanged) {
		t.Fatalf("send after the identity key changed: %v", err)
	}
	wantVerification(t, alice.Messenger, bob.AccountID(), ChangedSinceVerified, true)
	if first, err := alice.NoteIdentityChanged(bob.AccountID()); err != nil || !first {
		t.Fatalf("first note of the change: %v, %v", first, err)
	}
	if again, err := alice.NoteIdentityChanged(bob.AccountID()); err != nil || again {
		t.Fatalf("second note of the same change: %v, %v", again, err)
	}

	app := newMobile(alice.Messenger) // not closed: alice's cleanup closes the Messenger
	off, err := app.OfferedSafetyNumber(bob.AccountID())
	if err != nil || off == nil || !bytes.Equal(off.Key, newKey) || !safetyNumberRE.MatchString(off.Number) || off.Number == sn.Number {
		t.Fatalf("offered safety number %+v, %v (old %q)", off, err, sn.Number)
	}
	if same, err := app.SafetyNumber(bob.AccountID()); err != nil || same.Number != sn.Number {
		t.Fatalf("trusted safety number %+v, %v: want the old one until accepted", same, err)
	}
	for _, wrong := range [][]byte{sn.Key, append([]byte{5}, make([]byte, 32)...)} {
		if err := app.TrustOffered(bob.AccountID(), wrong); !errors.Is(err, ErrNoOfferedKey) {
			t.Fatalf("accepting a key not offered: %v", err)
		}
		if err := app.MarkVerified(bob.AccountID(), wrong); !errors.Is(err, ErrNoOfferedKey) {
			t.Fatalf("marking a key not offered: %v", err)
		}
	}
	if _, err := app.Send(bob.AccountID(), "still refused", nil); !errors.Is(err, ErrIdentityChanged) {
		t.Fatalf("send after refused accepts: %v", err)
	}
	if err := app.MarkVerified(bob.AccountID(), off.Key); err != nil {
		t.Fatal(err)
	}
	if v, err := app.Verification(bob.AccountID()); err != nil || v.State != Verified || v.Offered {
		t.Fatalf("after marking the new key: %+v, %v", v, err)
	}
	if got, err := app.OfferedSafetyNumber(bob.AccountID()); err != nil || got != nil {
		t.Fatalf("offered after accepting: %+v, %v", got, err)
	}
	if _, err := app.Send(bob.AccountID(), "compared", nil); err != nil {
		t.Fatal(err)
	}
	nb, err := OpenStore(newDirStore(newBob), &r.cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nb.Close() })
	b2 := &device{Messenger: nb, rec: newRecorder()}
	b2.run(t)
	nextMessage(t, b2.rec, "compared")
	if theirs, err := nb.SafetyNumber(alice.AccountID()); err != nil || theirs.Number != off.Number {
		t.Fatalf("bob's new device shows %+v, %v; alice compared %q", theirs, err, off.Number)
	}
}

// TestVerificationRecords: on an app's own store (KVStore), the
// verification record lives under messenger/trust/; a device the
// operator slips into a verified contact's account makes it
// ChangedSinceVerified, TrustOffered without comparing leaves it so,
// and ClearVerified removes the record.
func TestVerificationRecords(t *testing.T) {
	r := newRelay(t)
	ctx := ctxT(t)
	alice, kv := registerInMemory(t, r)
	bob := register(t, r)
	sn := markVerified(t, alice, bob.AccountID())
	record := "messenger/" + trustKey(bob.AccountID())
	if got := kv.keys("messenger/trust/"); len(got) != 1 || got[0] != record {
		t.Fatalf("trust records %q, want %q", got, record)
	}

	_, hostile := addDevice(t, r, bob.AccountID())
	if _, err := alice.Send(ctx, bob.AccountID(), &Content{Text: "secret"}); !errors.Is(err, ErrIdentityChanged) {
		t.Fatalf("send with a hostile device: %v", err)
	}
	wantVerification(t, alice.Messenger, bob.AccountID(), ChangedSinceVerified, true)
	if first, err := alice.NoteIdentityChanged(bob.AccountID()); err != nil || !first {
		t.Fatalf("note: %v, %v", first, err)
	}
	if err := alice.TrustOffered(bob.AccountID(), hostile); err != nil {
		t.Fatal(err)
	}
	wantVerification(t, alice.Messenger, bob.AccountID(), ChangedSinceVerified, false)
	// Bob's own device still has the old key: a change again.
	if _, err := alice.Send(ctx, bob.AccountID(), &Content{Text: "secret"}); !errors.Is(err, ErrIdentityChanged) {
		t.Fatalf("send with bob's old key offered: %v", err)
	}
	if first, err := alice.NoteIdentityChanged(bob.AccountID()); err != nil || !first {
		t.Fatalf("note of the second change: %v, %v", first, err)
	}
	off, err := alice.OfferedSafetyNumber(bob.AccountID())
	if err != nil || off == nil || !bytes.Equal(off.Key, sn.Key) || off.Number != sn.Number {
		t.Fatalf("offered %+v, %v: want bob's first key again", off, err)
	}
	if err := alice.MarkVerified(bob.AccountID(), off.Key); err != nil {
		t.Fatal(err)
	}
	wantVerification(t, alice.Messenger, bob.AccountID(), Verified, false)
	if err := alice.ClearVerified(bob.AccountID()); err != nil {
		t.Fatal(err)
	}
	wantVerification(t, alice.Messenger, bob.AccountID(), NotVerified, false)
	if got := kv.keys("messenger/trust/"); len(got) != 0 {
		t.Fatalf("trust records after clearing: %q", got)
	}
}

// memTrust is a program's TrustStates, in memory.
type memTrust struct{ recs map[string][]byte }

func (s *memTrust) UpdateTrust(account []byte, f func([]byte) ([]byte, error)) error {
	rec, err := f(s.recs[string(account)])
	switch {
	case err != nil || rec == nil:
	case string(rec) == "{}":
		delete(s.recs, string(account))
	default:
		s.recs[string(account)] = rec
	}
	return err
}

// TestTrustStates: with UseTrustStates the marks are kept by the
// program, none in the store's Records.
func TestTrustStates(t *testing.T) {
	r := newRelay(t)
	alice, bob := register(t, r), register(t, r)
	ts := &memTrust{recs: map[string][]byte{}}
	alice.UseTrustStates(ts)
	sn := markVerified(t, alice, bob.AccountID())
	wantVerification(t, alice.Messenger, bob.AccountID(), Verified, false)
	want := `{"verified":"` + keyFingerprint(sn.Key) + `"}`
	if got := string(ts.recs[string(bob.AccountID())]); got != want {
		t.Fatalf("record %s, want %s", got, want)
	}
	if keys, err := alice.store.List("trust/"); err != nil || len(keys) != 0 {
		t.Fatalf("records in the store: %q, %v", keys, err)
	}
	if err := alice.ClearVerified(bob.AccountID()); err != nil {
		t.Fatal(err)
	}
	wantVerification(t, alice.Messenger, bob.AccountID(), NotVerified, false)
	if len(ts.recs) != 0 {
		t.Fatalf("records left after clearing: %q", ts.recs)
	}
}

// TestIdentityChangedOnReceive: Bob reinstalls and writes first. Alice's
// handler is told (OnDropped, DropIdentityChanged, from Bob's account),
// the new key is offered, not trusted, and once Alice accepts it the
// next message from Bob's new device comes through.
func TestIdentityChangedOnReceive(t *testing.T) {
	r := newRelay(t)
	ctx := ctxT(t)
	alice, bob := register(t, r), register(t, r)
	alice.run(t)
	if _, err := bob.Send(ctx, alice.AccountID(), &Content{Text: "hi"}); err != nil {
		t.Fatal(err)
	}
	nextMessage(t, alice.rec, "hi")
	sn, err := alice.SafetyNumber(bob.AccountID())
	if err != nil {
		t.Fatal(err)
	}

	newBob, newKey := reinstall(t, r, bob)
	nb, err := OpenStore(newDirStore(newBob), &r.cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nb.Close() })
	if _, err := nb.Send(ctx, alice.AccountID(), &Content{Text: "reinstalled"}); err != nil {
		t.Fatal(err)
	}
	d := next[*Dropped](t, alice.rec)
	if d.Reason != DropIdentityChanged || !bytes.Equal(d.From, bob.AccountID()) || d.FromDevice != nb.DeviceID() {
		t.Fatalf("dropped %+v, want %s from %x/%d", *d, DropIdentityChanged, bob.AccountID(), nb.DeviceID())
	}
	if same, err := alice.SafetyNumber(bob.AccountID()); err != nil || same.Number != sn.Number {
		t.Fatalf("trusted safety number %+v, %v: the new key was trusted unasked", same, err)
	}
	off, err := alice.OfferedSafetyNumber(bob.AccountID())
	if err != nil || off == nil || !bytes.Equal(off.Key, newKey) {
		t.Fatalf("offered %+v, %v; want the new key", off, err)
	}
	if first, err := alice.NoteIdentityChanged(bob.AccountID()); err != nil || !first {
		t.Fatalf("note of the change: %v, %v", first, err)
	}

	if err := alice.TrustOffered(bob.AccountID(), off.Key); err != nil {
		t.Fatal(err)
	}
	if _, err := nb.Send(ctx, alice.AccountID(), &Content{Text: "accepted"}); err != nil {
		t.Fatal(err)
	}
	if m := nextMessage(t, alice.rec, "accepted"); !bytes.Equal(m.From, bob.AccountID()) {
		t.Fatalf("from %x", m.From)
	}
}
