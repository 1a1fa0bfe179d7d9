package e2e_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
)

// TestOfferedIdentity: another identity key for a known account, in a
// bundle or in a prekey message, is refused and kept as the offered key;
// its safety number differs; accepting exactly that key makes it the
// trusted one, and the contact's next prekey message decrypts.
func TestOfferedIdentity(t *testing.T) {
	ctx := context.Background()
	alice, bob := newParty(t, 0xa), newParty(t, 0xb)
	if err := alice.dev.StartSessions(ctx, bob.keys(0), nil); err != nil {
		t.Fatal(err)
	}
	before, err := alice.dev.SafetyNumber(bob.acct)
	if err != nil {
		t.Fatal(err)
	}
	if _, offered, err := alice.dev.IdentityKeys(bob.acct); err != nil || offered != nil {
		t.Fatalf("offered before any change: %x %v", offered, err)
	}
	impostor := newParty(t, 0xb)
	if err := alice.dev.ForgetDevices(bob.acct, []uint32{1}); err != nil {
		t.Fatal(err)
	}
	if err := alice.dev.StartSessions(ctx, impostor.keys(0), nil); !errors.Is(err, e2e.ErrIdentityChanged) {
		t.Fatalf("changed identity: %v", err)
	}
	trusted, offered, err := alice.dev.IdentityKeys(bob.acct)
	if err != nil || !bytes.Equal(trusted, bob.reg.IdentityKey) || !bytes.Equal(offered, impostor.reg.IdentityKey) {
		t.Fatalf("after the refusal: trusted %x offered %x (%v)", trusted, offered, err)
	}
	if alice.dev.SafetyNumberWith(bob.acct, offered) == before {
		t.Fatal("the offered key makes the same safety number")
	}
	if err := alice.dev.TrustOffered(bob.acct, bob.reg.IdentityKey); !errors.Is(err, e2e.ErrNoOfferedKey) {
		t.Fatalf("accepting a key that was not offered: %v", err)
	}

	// The impostor writes first: refused while untrusted, read once accepted.
	if err := impostor.dev.StartSessions(ctx, alice.keys(0), nil); err != nil {
		t.Fatal(err)
	}
	msgs, err := impostor.dev.Encrypt(ctx, alice.acct, []uint32{1}, []byte("it is me"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.dev.Decrypt(ctx, envelope(impostor, msgs[0])); !errors.Is(err, e2e.ErrIdentityChanged) {
		t.Fatalf("prekey message with another identity: %v", err)
	}
	if err := alice.dev.TrustOffered(bob.acct, offered); err != nil {
		t.Fatal(err)
	}
	if trusted, offered, _ := alice.dev.IdentityKeys(bob.acct); !bytes.Equal(trusted, impostor.reg.IdentityKey) || offered != nil {
		t.Fatalf("after accepting: trusted %x offered %x", trusted, offered)
	}
	if sn, _ := alice.dev.SafetyNumber(bob.acct); sn == before {
		t.Fatal("the safety number did not change")
	}
	msgs, err = impostor.dev.Encrypt(ctx, alice.acct, []uint32{1}, []byte("again"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := alice.dev.Decrypt(ctx, envelope(impostor, msgs[0])); err != nil || string(got) != "again" {
		t.Fatalf("after accepting: %q %v", got, err)
	}
}

// TestOfferedByPrekeyMessage: a prekey message alone (no key fetch) with
// another identity key for a known account offers that key.
func TestOfferedByPrekeyMessage(t *testing.T) {
	ctx := context.Background()
	alice, bob := newParty(t, 0xa), newParty(t, 0xb)
	if err := alice.dev.StartSessions(ctx, bob.keys(0), nil); err != nil {
		t.Fatal(err)
	}
	impostor := newParty(t, 0xb)
	if err := impostor.dev.StartSessions(ctx, alice.keys(1), nil); err != nil {
		t.Fatal(err)
	}
	msgs, err := impostor.dev.Encrypt(ctx, alice.acct, []uint32{1}, []byte("it is me"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.dev.Decrypt(ctx, envelope(impostor, msgs[0])); !errors.Is(err, e2e.ErrIdentityChanged) {
		t.Fatalf("prekey message with another identity: %v", err)
	}
	if _, offered, err := alice.dev.IdentityKeys(bob.acct); err != nil || !bytes.Equal(offered, impostor.reg.IdentityKey) {
		t.Fatalf("offered %x (%v), want the impostor's key", offered, err)
	}
}

// TestOfferedByPQXDHMessage: a PQXDH initial message with another
// identity key for a known account is refused and offers that key, as
// a classic prekey message does; once accepted, it decrypts.
func TestOfferedByPQXDHMessage(t *testing.T) {
	ctx := context.Background()
	alice, bob := newPQParty(t, 0xa), newParty(t, 0xb)
	if err := alice.dev.StartSessions(ctx, bob.keys(0), nil); err != nil {
		t.Fatal(err)
	}
	impostor := newParty(t, 0xb)
	if err := impostor.dev.StartSessionsKEM(ctx, alice.keys(1), kemFor(alice.kem[0]), nil); err != nil {
		t.Fatal(err)
	}
	msgs, err := impostor.dev.Encrypt(ctx, alice.acct, []uint32{1}, []byte("post-quantum me"))
	if err != nil || msgs[0].Type != e2e.TypePQXDH {
		t.Fatalf("encrypt: type %d, %v", msgs[0].Type, err)
	}
	if _, err := alice.dev.Decrypt(ctx, envelope(impostor, msgs[0])); !errors.Is(err, e2e.ErrIdentityChanged) {
		t.Fatalf("PQXDH message with another identity: %v", err)
	}
	_, offered, err := alice.dev.IdentityKeys(bob.acct)
	if err != nil || !bytes.Equal(offered, impostor.reg.IdentityKey) {
		t.Fatalf("offered %x (%v), want the impostor's key", offered, err)
	}
	if err := alice.dev.TrustOffered(bob.acct, offered); err != nil {
		t.Fatal(err)
	}
	if got, err := alice.dev.Decrypt(ctx, envelope(impostor, msgs[0])); err != nil || string(got) != "post-quantum me" {
		t.Fatalf("after accepting: %q %v", got, err)
	}
}
