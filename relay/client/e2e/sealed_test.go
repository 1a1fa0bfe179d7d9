package e2e_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
	"github.com/pigeonhole/pigeonhole/spec"
)

// certFor signs a sender certificate the way the relay does, for p's
// device 1 with identity key identity.
func certFor(t *testing.T, server ed25519.PrivateKey, keyID uint32, p *party, identity []byte, expires time.Time) []byte {
	t.Helper()
	body, err := proto.Marshal(&spec.SenderCertificateBody{AccountId: p.acct, DeviceId: 1, IdentityKey: identity, ExpiresMs: expires.UnixMilli(), KeyId: keyID})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := proto.Marshal(&spec.SenderCertificate{Certificate: body, Signature: ed25519.Sign(server, spec.SenderCertificateMessage(body))})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func serverKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// sealedFrom is alice's sealed message to bob's device 1 carrying text.
func sealedFrom(t *testing.T, alice, bob *party, cert []byte, text string) *client.Envelope {
	t.Helper()
	msgs, err := alice.dev.Encrypt(context.Background(), bob.acct, []uint32{1}, []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := alice.dev.Seal(bob.acct, msgs, cert)
	if err != nil {
		t.Fatal(err)
	}
	if sealed[0].Type != 0 || sealed[0].DeviceID != 1 {
		t.Fatalf("sealed device message %+v, want type 0 for device 1", sealed[0])
	}
	return &client.Envelope{Seq: 5, Content: sealed[0].Content, Sealed: true}
}

// TestSealedConversation: bob opens alice's sealed message, learns the
// sender from the certificate, and decrypts it; his sealed answer opens
// for alice.
func TestSealedConversation(t *testing.T) {
	ctx := context.Background()
	alice, bob := newParty(t, 0xa), newParty(t, 0xb)
	server := serverKey(t)
	trusted := e2e.ServerKeys{3: server.Public().(ed25519.PublicKey)}
	now := time.Now()
	if _, err := alice.dev.Seal(bob.acct, []client.DeviceMessage{{DeviceID: 1, Type: 2, Content: []byte("x")}}, nil); !errors.Is(err, e2e.ErrNoIdentity) {
		t.Fatalf("seal before any session: %v, want ErrNoIdentity", err)
	}
	if err := alice.dev.StartSessions(ctx, bob.keys(0), nil); err != nil {
		t.Fatal(err)
	}
	env := sealedFrom(t, alice, bob, certFor(t, server, 3, alice, alice.reg.IdentityKey, now.Add(time.Hour)), "hello, sealed")
	opened, err := bob.dev.OpenSealed(env, trusted, now)
	if err != nil {
		t.Fatal(err)
	}
	if string(opened.Sender) != string(alice.acct) || opened.SenderDevice != 1 || !opened.Sealed || opened.Seq != 5 {
		t.Fatalf("opened %+v, want alice's device 1, sealed, seq 5", opened)
	}
	got, err := bob.dev.Decrypt(ctx, opened)
	if err != nil || string(got) != "hello, sealed" {
		t.Fatalf("decrypt %q, %v", got, err)
	}
	back := sealedFrom(t, bob, alice, certFor(t, server, 3, bob, bob.reg.IdentityKey, now.Add(time.Hour)), "hi, sealed")
	opened, err = alice.dev.OpenSealed(back, trusted, now)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := alice.dev.Decrypt(ctx, opened); err != nil || string(got) != "hi, sealed" {
		t.Fatalf("alice decrypts %q, %v", got, err)
	}
}

// TestSealedRefusals: the recipient refuses a certificate that expired,
// is signed by an untrusted or another key under a trusted id, or names
// another identity key than the one the message was sealed with; and a
// tampered message.
func TestSealedRefusals(t *testing.T) {
	ctx := context.Background()
	alice, bob, carol := newParty(t, 0xa), newParty(t, 0xb), newParty(t, 0xc)
	if err := alice.dev.StartSessions(ctx, bob.keys(0), nil); err != nil {
		t.Fatal(err)
	}
	server, forger := serverKey(t), serverKey(t)
	trusted := e2e.ServerKeys{3: server.Public().(ed25519.PublicKey)}
	now := time.UnixMilli(time.Now().UnixMilli()) // certificates carry milliseconds
	for _, tc := range []struct {
		name string
		cert []byte
	}{
		{"expired", certFor(t, server, 3, alice, alice.reg.IdentityKey, now.Add(-time.Second))},
		{"expiring now", certFor(t, server, 3, alice, alice.reg.IdentityKey, now)},
		{"forged under the trusted key id", certFor(t, forger, 3, alice, alice.reg.IdentityKey, now.Add(time.Hour))},
		{"an untrusted key id", certFor(t, server, 4, alice, alice.reg.IdentityKey, now.Add(time.Hour))},
		{"another identity key", certFor(t, server, 3, alice, carol.reg.IdentityKey, now.Add(time.Hour))},
		{"garbage", []byte("not a certificate")},
	} {
		env := sealedFrom(t, alice, bob, tc.cert, "x")
		if _, err := bob.dev.OpenSealed(env, trusted, now); !errors.Is(err, e2e.ErrCertificate) {
			t.Errorf("%s: %v, want ErrCertificate", tc.name, err)
		}
	}
	env := sealedFrom(t, alice, bob, certFor(t, server, 3, alice, alice.reg.IdentityKey, now.Add(time.Hour)), "x")
	env.Content[len(env.Content)-1] ^= 1
	if _, err := bob.dev.OpenSealed(env, trusted, now); !errors.Is(err, e2e.ErrSealed) {
		t.Errorf("tampered: %v, want ErrSealed", err)
	}
	env.Content[len(env.Content)-1] ^= 1
	if _, err := carol.dev.OpenSealed(env, trusted, now); !errors.Is(err, e2e.ErrSealed) {
		t.Errorf("opened by another recipient: %v, want ErrSealed", err)
	}
}
