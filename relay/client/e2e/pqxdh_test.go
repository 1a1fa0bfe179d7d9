package e2e_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
)

// pqParty is a party with KEM prekeys: kem[0] and kem[1] one-time, last
// the last-resort one.
type pqParty struct {
	*party
	kem  []e2e.KEMPreKey
	last e2e.KEMPreKey
}

func newPQParty(t *testing.T, id byte) *pqParty {
	t.Helper()
	p := &pqParty{party: newParty(t, id)}
	var err error
	if p.kem, err = p.dev.NewKEMPreKeys(2); err != nil {
		t.Fatal(err)
	}
	if p.last, err = p.dev.NewLastResortKEMPreKey(); err != nil {
		t.Fatal(err)
	}
	if p.kem[0].ID == p.kem[1].ID || p.kem[1].ID == p.last.ID {
		t.Fatalf("KEM prekey ids %d %d %d", p.kem[0].ID, p.kem[1].ID, p.last.ID)
	}
	return p
}

// kemFor is the KEM prekeys argument of StartSessionsKEM for device 1.
func kemFor(k e2e.KEMPreKey) map[uint32]e2e.KEMPreKey { return map[uint32]e2e.KEMPreKey{1: k} }

// handshake reads which handshake dev's session file names for device 1
// of account.
func handshake(t *testing.T, dev *e2e.Device, account []byte) string {
	t.Helper()
	b := stored(t, dev, "sessions/"+hex.EncodeToString(account)+".1")
	var f struct {
		Handshake string `json:"handshake"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("session file: %v", err)
	}
	return f.Handshake
}

// hasKEM reports whether p keeps the KEM prekey id.
func hasKEM(t *testing.T, p *pqParty, id uint32) bool {
	t.Helper()
	return stored(t, p.dev, "kemprekeys/"+strconv.FormatUint(uint64(id), 10)) != nil
}

func encryptOne(t *testing.T, from *party, to []byte, text string) client.DeviceMessage {
	t.Helper()
	msgs, err := from.dev.Encrypt(context.Background(), to, []uint32{1}, []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return msgs[0]
}

// TestPQXDHConversation: Alice starts a PQXDH session from Bob's bundle
// with a one-time KEM prekey; every message before Bob answers is a
// TypePQXDH message carrying the same KEM prekey id and ciphertext; Bob
// decrypts them in order, deletes the one-time KEM prekey, and both
// sides go on with ordinary Double Ratchet messages both ways.
func TestPQXDHConversation(t *testing.T) {
	ctx := context.Background()
	alice, bob := newPQParty(t, 0xa), newPQParty(t, 0xb)
	if err := alice.dev.StartSessionsKEM(ctx, bob.keys(0), kemFor(bob.kem[0]), nil); err != nil {
		t.Fatal(err)
	}
	if h := handshake(t, alice.dev, bob.acct); h != "pqxdh" {
		t.Fatalf("alice's session file says %q", h)
	}
	first := encryptOne(t, alice.party, bob.acct, "hello bob")
	second := encryptOne(t, alice.party, bob.acct, "are you there")
	for _, m := range []client.DeviceMessage{first, second} {
		if m.Type != e2e.TypePQXDH || bytes.Contains(m.Content, []byte("hello")) {
			t.Fatalf("initial message of type %d", m.Type)
		}
	}
	// The documented layout: version, KEM prekey id, 0x0A || ciphertext,
	// then libsignal's prekey message.
	head := 1 + 4 + 1 + 1568
	if first.Content[0] != 1 || binary.BigEndian.Uint32(first.Content[1:5]) != bob.kem[0].ID || first.Content[5] != e2e.KEMKeyType {
		t.Fatalf("header % x", first.Content[:6])
	}
	if !bytes.Equal(first.Content[:head], second.Content[:head]) {
		t.Fatal("the two initial messages carry different KEM parts")
	}
	id, ct, inner, again, err := e2e.ParsePQXDH(first.Content)
	if err != nil || id != bob.kem[0].ID || len(ct) != 1569 || !bytes.Equal(inner, first.Content[head:]) || !bytes.Equal(again, first.Content) {
		t.Fatalf("parse: id %d, %d-byte ciphertext, %v", id, len(ct), err)
	}

	for _, m := range []struct {
		msg  client.DeviceMessage
		text string
	}{{first, "hello bob"}, {second, "are you there"}} {
		got, err := bob.dev.Decrypt(ctx, envelope(alice.party, m.msg))
		if err != nil || string(got) != m.text {
			t.Fatalf("bob decrypts %q, %v; want %q", got, err, m.text)
		}
	}
	if hasKEM(t, bob, bob.kem[0].ID) {
		t.Fatal("bob's one-time KEM prekey is still there")
	}
	if !hasKEM(t, bob, bob.kem[1].ID) {
		t.Fatal("bob's other KEM prekey is gone")
	}
	if h := handshake(t, bob.dev, alice.acct); h != "pqxdh" {
		t.Fatalf("bob's session file says %q", h)
	}
	// Redelivery of an initial message is a duplicate, as with X3DH.
	if _, err := bob.dev.Decrypt(ctx, envelope(alice.party, first)); !errors.Is(err, e2e.ErrDuplicate) {
		t.Fatalf("redelivery: %v", err)
	}
	for i, text := range []string{"hi alice", "fine", "and you"} {
		from, to := bob.party, alice.party
		if i == 2 {
			from, to = alice.party, bob.party
		}
		m := encryptOne(t, from, to.acct, text)
		if m.Type != e2e.TypeSignal {
			t.Fatalf("message %d has type %d, want %d", i, m.Type, e2e.TypeSignal)
		}
		got, err := to.dev.Decrypt(ctx, envelope(from, m))
		if err != nil || string(got) != text {
			t.Fatalf("decrypt %q, %v; want %q", got, err, text)
		}
	}
	sa, _ := alice.dev.SafetyNumber(bob.acct)
	sb, _ := bob.dev.SafetyNumber(alice.acct)
	if sa == "" || sa != sb {
		t.Fatalf("safety numbers %q and %q", sa, sb)
	}
}

// TestPQXDHSurvivesReopen: the pending KEM part and the handshake are
// in the session file, so a reopened device sends the same initial
// message and the reopened responder accepts it.
func TestPQXDHSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	alice, bob := newPQParty(t, 0xa), newPQParty(t, 0xb)
	if err := alice.dev.StartSessionsKEM(ctx, bob.keys(0), kemFor(bob.kem[1]), nil); err != nil {
		t.Fatal(err)
	}
	a2 := reopen(t, alice.dev)
	msgs, err := a2.Encrypt(ctx, bob.acct, []uint32{1}, []byte("after reopen"))
	if err != nil || msgs[0].Type != e2e.TypePQXDH {
		t.Fatalf("encrypt after reopen: %v", err)
	}
	b2 := reopen(t, bob.dev)
	if got, err := b2.Decrypt(ctx, envelope(alice.party, msgs[0])); err != nil || string(got) != "after reopen" {
		t.Fatalf("decrypt %q, %v", got, err)
	}
}

// TestPQXDHOneTimeReplay: once Bob has used a one-time KEM prekey, the
// same initial message fails clearly even after Bob dropped the session,
// where X3DH without a one-time EC prekey would accept it again.
func TestPQXDHOneTimeReplay(t *testing.T) {
	ctx := context.Background()
	alice, bob := newPQParty(t, 0xa), newPQParty(t, 0xb)
	keys := bob.keys(0)
	keys.Devices[0].PreKey = nil // only the signed EC prekey: X3DH alone is replayable
	if err := alice.dev.StartSessionsKEM(ctx, keys, kemFor(bob.kem[0]), nil); err != nil {
		t.Fatal(err)
	}
	m := encryptOne(t, alice.party, bob.acct, "once")
	if _, err := bob.dev.Decrypt(ctx, envelope(alice.party, m)); err != nil {
		t.Fatal(err)
	}
	if err := bob.dev.ForgetDevices(alice.acct, []uint32{1}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.dev.Decrypt(ctx, envelope(alice.party, m)); !errors.Is(err, e2e.ErrKEMPreKeyUsed) {
		t.Fatalf("replay of a one-time KEM prekey: %v", err)
	}
}

// TestPQXDHLastResort: a bundle with the last-resort KEM prekey starts a
// session, Bob keeps that prekey for the next one, and a replay of the
// same initial message after Bob dropped the session is refused.
func TestPQXDHLastResort(t *testing.T) {
	ctx := context.Background()
	alice, bob, carol := newPQParty(t, 0xa), newPQParty(t, 0xb), newPQParty(t, 0xc)
	keys := bob.keys(0)
	keys.Devices[0].PreKey = nil
	if err := alice.dev.StartSessionsKEM(ctx, keys, kemFor(bob.last), nil); err != nil {
		t.Fatal(err)
	}
	m := encryptOne(t, alice.party, bob.acct, "last resort")
	if got, err := bob.dev.Decrypt(ctx, envelope(alice.party, m)); err != nil || string(got) != "last resort" {
		t.Fatalf("decrypt %q, %v", got, err)
	}
	if !hasKEM(t, bob, bob.last.ID) {
		t.Fatal("the last-resort KEM prekey is gone")
	}
	// Carol starts another session on the same last-resort prekey.
	if err := carol.dev.StartSessionsKEM(ctx, keys, kemFor(bob.last), nil); err != nil {
		t.Fatal(err)
	}
	mc := encryptOne(t, carol.party, bob.acct, "me too")
	if got, err := bob.dev.Decrypt(ctx, envelope(carol.party, mc)); err != nil || string(got) != "me too" {
		t.Fatalf("second session on the last-resort prekey: %q, %v", got, err)
	}
	if err := bob.dev.ForgetDevices(alice.acct, []uint32{1}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.dev.Decrypt(ctx, envelope(alice.party, m)); !errors.Is(err, e2e.ErrKEMReplay) {
		t.Fatalf("replay on the last-resort KEM prekey: %v", err)
	}
}

// TestPQXDHTamperedCiphertext: any change to the KEM ciphertext or the
// KEM prekey id makes the initial message fail, and leaves Bob's
// prekeys and state as they were, so the real message still decrypts.
func TestPQXDHTamperedCiphertext(t *testing.T) {
	ctx := context.Background()
	alice, bob := newPQParty(t, 0xa), newPQParty(t, 0xb)
	if err := alice.dev.StartSessionsKEM(ctx, bob.keys(0), kemFor(bob.kem[0]), nil); err != nil {
		t.Fatal(err)
	}
	m := encryptOne(t, alice.party, bob.acct, "intact")
	tamper := func(what string, change func(b []byte) []byte) {
		t.Helper()
		bad := m
		bad.Content = change(bytes.Clone(m.Content))
		got, err := bob.dev.Decrypt(ctx, envelope(alice.party, bad))
		if err == nil || errors.Is(err, e2e.ErrDuplicate) {
			t.Errorf("%s: decrypts as %q, %v", what, got, err)
		}
	}
	for _, i := range []int{6, 700, 5 + 1568} { // first, middle and last ciphertext byte
		tamper("ciphertext byte "+strconv.Itoa(i), func(b []byte) []byte { b[i] ^= 0x01; return b })
	}
	tamper("KEM type", func(b []byte) []byte { b[5] = 0x08; return b })
	tamper("KEM prekey id", func(b []byte) []byte { binary.BigEndian.PutUint32(b[1:5], bob.kem[1].ID); return b })
	tamper("version", func(b []byte) []byte { b[0] = 2; return b })
	tamper("truncated", func(b []byte) []byte { return b[:100] })
	// Sent as an X3DH message without its KEM part, it fails too: Bob
	// derives X3DH keys, which are not Alice's.
	x3dh := client.DeviceMessage{DeviceID: 1, Type: e2e.TypePreKey, Content: m.Content[1+4+1569:]}
	if got, err := bob.dev.Decrypt(ctx, envelope(alice.party, x3dh)); err == nil {
		t.Errorf("stripped to X3DH: decrypts as %q", got)
	}
	for _, id := range []uint32{bob.kem[0].ID, bob.kem[1].ID} {
		if !hasKEM(t, bob, id) {
			t.Fatalf("KEM prekey %d lost to a tampered message", id)
		}
	}
	if got, err := bob.dev.Decrypt(ctx, envelope(alice.party, m)); err != nil || string(got) != "intact" {
		t.Fatalf("the real message after the tampered ones: %q, %v", got, err)
	}
}

// TestPQXDHBadKEMPreKey: a KEM prekey whose signature or key was
// changed, or that is signed by another identity, starts no session.
func TestPQXDHBadKEMPreKey(t *testing.T) {
	ctx := context.Background()
	alice, bob, mallory := newPQParty(t, 0xa), newPQParty(t, 0xb), newPQParty(t, 0xd)
	bad := map[string]func(k e2e.KEMPreKey) e2e.KEMPreKey{
		"signature bit": func(k e2e.KEMPreKey) e2e.KEMPreKey {
			k.Signature = bytes.Clone(k.Signature)
			k.Signature[10] ^= 4
			return k
		},
		"key bit": func(k e2e.KEMPreKey) e2e.KEMPreKey {
			k.PublicKey = bytes.Clone(k.PublicKey)
			k.PublicKey[900] ^= 1
			return k
		},
		"type byte": func(k e2e.KEMPreKey) e2e.KEMPreKey {
			k.PublicKey = bytes.Clone(k.PublicKey)
			k.PublicKey[0] = 0x08 // round-3 Kyber1024
			return k
		},
		"short key":    func(k e2e.KEMPreKey) e2e.KEMPreKey { k.PublicKey = k.PublicKey[:1000]; return k },
		"short sig":    func(k e2e.KEMPreKey) e2e.KEMPreKey { k.Signature = k.Signature[:63]; return k },
		"other signer": func(e2e.KEMPreKey) e2e.KEMPreKey { return mallory.kem[0] },
	}
	for name, change := range bad {
		err := alice.dev.StartSessionsKEM(ctx, bob.keys(0), kemFor(change(bob.kem[0])), nil)
		if !errors.Is(err, e2e.ErrBadKEMPreKey) {
			t.Errorf("%s: %v", name, err)
		}
		if ids, _ := alice.dev.SessionDevices(bob.acct); len(ids) != 0 {
			t.Fatalf("%s: a session was started", name)
		}
	}
	// The signed EC prekey is checked on the PQXDH path too.
	keys := bob.keys(0)
	keys.Devices[0].SignedPreKey.Signature = bytes.Clone(keys.Devices[0].SignedPreKey.Signature)
	keys.Devices[0].SignedPreKey.Signature[0] ^= 1
	if err := alice.dev.StartSessionsKEM(ctx, keys, kemFor(bob.kem[0]), nil); err == nil {
		t.Error("a bad signed prekey signature starts a PQXDH session")
	}
	if err := alice.dev.StartSessionsKEM(ctx, bob.keys(0), kemFor(bob.kem[0]), nil); err != nil {
		t.Fatalf("the untouched bundle: %v", err)
	}
}

// TestPQXDHDowngradeRefused: after a PQXDH session, an X3DH initial
// message from the same device is refused, not taken as a new session;
// a bundle without a KEM prekey still gives a plain X3DH session.
func TestPQXDHDowngradeRefused(t *testing.T) {
	ctx := context.Background()
	alice, bob := newPQParty(t, 0xa), newPQParty(t, 0xb)
	if err := alice.dev.StartSessionsKEM(ctx, bob.keys(0), kemFor(bob.kem[0]), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.dev.Decrypt(ctx, envelope(alice.party, encryptOne(t, alice.party, bob.acct, "pq"))); err != nil {
		t.Fatal(err)
	}
	// Alice's device drops the session and starts again from a bundle
	// that (a relay has seen to it) has no KEM prekey.
	if err := alice.dev.ForgetDevices(bob.acct, []uint32{1}); err != nil {
		t.Fatal(err)
	}
	if err := alice.dev.StartSessions(ctx, bob.keys(1), nil); err != nil {
		t.Fatal(err)
	}
	if h := handshake(t, alice.dev, bob.acct); h != "x3dh" {
		t.Fatalf("alice's new session file says %q", h)
	}
	m := encryptOne(t, alice.party, bob.acct, "classical")
	if m.Type != e2e.TypePreKey {
		t.Fatalf("type %d", m.Type)
	}
	if _, err := bob.dev.Decrypt(ctx, envelope(alice.party, m)); !errors.Is(err, e2e.ErrDowngrade) {
		t.Fatalf("X3DH after PQXDH: %v", err)
	}
	// A device with no PQXDH session takes the same X3DH message.
	carol := newPQParty(t, 0xc)
	if err := carol.dev.StartSessions(ctx, bob.keys(2), nil); err != nil {
		t.Fatal(err)
	}
	if h := handshake(t, carol.dev, bob.acct); h != "x3dh" {
		t.Fatalf("carol's session file says %q", h)
	}
	if got, err := bob.dev.Decrypt(ctx, envelope(carol.party, encryptOne(t, carol.party, bob.acct, "x3dh"))); err != nil || string(got) != "x3dh" {
		t.Fatalf("plain X3DH: %q, %v", got, err)
	}
}

// FuzzParsePQXDH: the TypePQXDH decoder never panics, and what it
// accepts encodes back to the same bytes.
func FuzzParsePQXDH(f *testing.F) {
	ctx := context.Background()
	dir := f.TempDir()
	alice, _, err := e2e.Create(filepath.Join(dir, "a"), 1)
	if err != nil {
		f.Fatal(err)
	}
	bob, reg, err := e2e.Create(filepath.Join(dir, "b"), 1)
	if err != nil {
		f.Fatal(err)
	}
	kem, err := bob.NewKEMPreKeys(1)
	if err != nil {
		f.Fatal(err)
	}
	keys := &client.Keys{AccountID: bytes.Repeat([]byte{0xb}, 16), Devices: []client.DeviceBundle{{
		DeviceID: 1, RegistrationID: reg.RegistrationID, IdentityKey: reg.IdentityKey,
		SignedPreKey: reg.SignedPreKey, PreKey: &reg.PreKeys[0],
	}}}
	if err := alice.StartSessionsKEM(ctx, keys, kemFor(kem[0]), nil); err != nil {
		f.Fatal(err)
	}
	msgs, err := alice.Encrypt(ctx, keys.AccountID, []uint32{1}, []byte("seed"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(msgs[0].Content)
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _, again, err := e2e.ParsePQXDH(b)
		if err == nil && len(again) > len(b) {
			t.Fatalf("re-encoding grew from %d to %d bytes", len(b), len(again))
		}
	})
}

// TestLegacySessionFile: a session file from before PQXDH (libsignal's
// bare record) still works, reads as an X3DH session, and is rewritten in
// the new layout on the next message.
func TestLegacySessionFile(t *testing.T) {
	ctx := context.Background()
	alice, bob := newParty(t, 0xa), newParty(t, 0xb)
	if err := alice.dev.StartSessions(ctx, bob.keys(0), nil); err != nil {
		t.Fatal(err)
	}
	key := "sessions/" + hex.EncodeToString(bob.acct) + ".1"
	b := stored(t, alice.dev, key)
	var f struct {
		Record json.RawMessage `json:"record"`
	}
	if err := json.Unmarshal(b, &f); err != nil || len(f.Record) == 0 {
		t.Fatalf("session file: %v", err)
	}
	store(t, alice.dev, key, f.Record)
	m := encryptOne(t, alice, bob.acct, "from an old file")
	if m.Type != e2e.TypePreKey {
		t.Fatalf("type %d", m.Type)
	}
	if got, err := bob.dev.Decrypt(ctx, envelope(alice, m)); err != nil || string(got) != "from an old file" {
		t.Fatalf("decrypt %q, %v", got, err)
	}
	if h := handshake(t, alice.dev, bob.acct); h != "x3dh" {
		t.Fatalf("rewritten session file says %q", h)
	}
}
