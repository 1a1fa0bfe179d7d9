package e2e_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
)

// TestKeptUntilHandled: a queued envelope (Seq set) that comes again
// after it was decrypted gives the same plaintext until Handled, then
// ErrDuplicate; an online-only one (Seq 0) is a duplicate at once.
// Pairwise (prekey and then ordinary messages) and group messages alike.
func TestKeptUntilHandled(t *testing.T) {
	ctx := context.Background()
	alice, bob := newParty(t, 0xa), newParty(t, 0xb)
	if err := alice.dev.StartSessions(ctx, bob.keys(0), nil); err != nil {
		t.Fatal(err)
	}
	again := func(t *testing.T, env *client.Envelope, want string) {
		t.Helper()
		for i := range 2 {
			if got, err := bob.dev.Decrypt(ctx, env); err != nil || string(got) != want {
				t.Fatalf("decrypt %d: %q, %v; want %q", i, got, err, want)
			}
		}
		if err := bob.dev.Handled(env); err != nil {
			t.Fatal(err)
		}
		if _, err := bob.dev.Decrypt(ctx, env); !errors.Is(err, e2e.ErrDuplicate) {
			t.Fatalf("after Handled: %v, want ErrDuplicate", err)
		}
		if err := bob.dev.Handled(env); err != nil {
			t.Fatalf("Handled twice: %v", err)
		}
	}
	for i, text := range []string{"first, a prekey message", "second, still one", "third"} {
		msgs, err := alice.dev.Encrypt(ctx, bob.acct, []uint32{1}, []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		env := envelope(alice, msgs[0])
		env.Seq = uint64(10 + i)
		again(t, env, text)
		if i == 1 {
			// Bob answers, so Alice's next message is an ordinary one.
			back, err := bob.dev.Encrypt(ctx, alice.acct, []uint32{1}, []byte("ok"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := alice.dev.Decrypt(ctx, envelope(bob, back[0])); err != nil {
				t.Fatal(err)
			}
		}
	}
	msgs, err := alice.dev.Encrypt(ctx, bob.acct, []uint32{1}, []byte("online only"))
	if err != nil || msgs[0].Type != e2e.TypeSignal {
		t.Fatalf("encrypt: %v", err)
	}
	online := envelope(alice, msgs[0])
	if got, err := bob.dev.Decrypt(ctx, online); err != nil || string(got) != "online only" {
		t.Fatalf("online-only: %q, %v", got, err)
	}
	if _, err := bob.dev.Decrypt(ctx, online); !errors.Is(err, e2e.ErrDuplicate) {
		t.Fatalf("online-only again: %v, want ErrDuplicate", err)
	}

	a, b := newMember(t, 0xa), newMember(t, 0xb)
	gid := newGroupID(t)
	distribute(t, gid, a, b)
	genv := &client.Envelope{Seq: 7, Sender: a.acct, SenderDevice: 1, Type: e2e.TypeGroup,
		Content: e2e.GroupContent(gid, groupEncrypt(t, gid, a, "to the group"))}
	for i := range 2 {
		if g, plain, err := b.dev.DecryptGroup(ctx, genv); err != nil || !bytes.Equal(g, gid) || string(plain) != "to the group" {
			t.Fatalf("group decrypt %d: %x %q %v", i, g, plain, err)
		}
	}
	if err := b.dev.Handled(genv); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.dev.DecryptGroup(ctx, genv); !errors.Is(err, e2e.ErrDuplicate) {
		t.Fatalf("group after Handled: %v, want ErrDuplicate", err)
	}
}

// BenchmarkDecryptKept: what keeping costs a received message (the
// package runs it on the directory storage, then in memory): Decrypt of
// a queued envelope (its plaintext kept) and then Handled, against
// Decrypt of an online-only one (nothing kept).
func BenchmarkDecryptKept(b *testing.B) {
	for _, queued := range []bool{false, true} {
		name := "online-only"
		if queued {
			name = "queued+Handled"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			alice, bob := newParty(b, 0xa), newParty(b, 0xb)
			if err := alice.dev.StartSessions(ctx, bob.keys(0), nil); err != nil {
				b.Fatal(err)
			}
			envs := make([]*client.Envelope, b.N)
			for i := range envs {
				msgs, err := alice.dev.Encrypt(ctx, bob.acct, []uint32{1}, []byte("a message of some length"))
				if err != nil {
					b.Fatal(err)
				}
				envs[i] = envelope(alice, msgs[0])
				if queued {
					envs[i].Seq = uint64(i + 1)
				}
			}
			b.ResetTimer()
			for _, env := range envs {
				if _, err := bob.dev.Decrypt(ctx, env); err != nil {
					b.Fatal(err)
				}
				if err := bob.dev.Handled(env); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
