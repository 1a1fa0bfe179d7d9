package e2e_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
)

type party struct {
	dev  *e2e.Device
	reg  *client.Registration
	acct []byte
}

func newParty(t testing.TB, id byte) *party {
	t.Helper()
	dev, reg := createDevice(t, 3)
	acct := bytes.Repeat([]byte{id}, 16)
	if err := dev.Registered(acct, 1); err != nil {
		t.Fatal(err)
	}
	return &party{dev: dev, reg: reg, acct: acct}
}

// keys is what the relay would answer to a fetch of p's keys, claiming
// one-time prekey i.
func (p *party) keys(i int) *client.Keys {
	return &client.Keys{AccountID: p.acct, Devices: []client.DeviceBundle{{
		DeviceID: 1, RegistrationID: p.reg.RegistrationID, IdentityKey: p.reg.IdentityKey,
		SignedPreKey: p.reg.SignedPreKey, PreKey: &p.reg.PreKeys[i],
	}}}
}

func envelope(from *party, m client.DeviceMessage) *client.Envelope {
	return &client.Envelope{Sender: from.acct, SenderDevice: 1, Type: m.Type, Content: m.Content}
}

func TestConversation(t *testing.T) {
	ctx := context.Background()
	alice, bob := newParty(t, 0xa), newParty(t, 0xb)
	if err := alice.dev.StartSessions(ctx, bob.keys(0), nil); err != nil {
		t.Fatal(err)
	}
	msgs, err := alice.dev.Encrypt(ctx, bob.acct, []uint32{1}, []byte("hello bob"))
	if err != nil {
		t.Fatal(err)
	}
	if msgs[0].Type != e2e.TypePreKey || bytes.Contains(msgs[0].Content, []byte("hello")) {
		t.Fatalf("first message: type %d", msgs[0].Type)
	}
	got, err := bob.dev.Decrypt(ctx, envelope(alice, msgs[0]))
	if err != nil || string(got) != "hello bob" {
		t.Fatalf("bob decrypts %q, %v", got, err)
	}
	// The relay delivers at least once; the same envelope again is a
	// duplicate, not an error to show.
	if _, err := bob.dev.Decrypt(ctx, envelope(alice, msgs[0])); !errors.Is(err, e2e.ErrDuplicate) {
		t.Fatalf("redelivery: %v", err)
	}
	// Bob answers on the session Alice started; Alice reads it.
	for _, text := range []string{"hi alice", "how are you"} {
		reply, err := bob.dev.Encrypt(ctx, alice.acct, []uint32{1}, []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		got, err = alice.dev.Decrypt(ctx, envelope(bob, reply[0]))
		if err != nil || string(got) != text {
			t.Fatalf("alice decrypts %q, %v", got, err)
		}
	}
	// Safety numbers agree on both sides.
	sa, err := alice.dev.SafetyNumber(bob.acct)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := bob.dev.SafetyNumber(alice.acct)
	if err != nil || sa != sb || len(strings.ReplaceAll(sa, " ", "")) != 60 {
		t.Fatalf("safety numbers %q and %q (%v)", sa, sb, err)
	}
}

func TestStateSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	alice, bob := newParty(t, 0xa), newParty(t, 0xb)
	if err := alice.dev.StartSessions(ctx, bob.keys(1), nil); err != nil {
		t.Fatal(err)
	}
	msgs, _ := alice.dev.Encrypt(ctx, bob.acct, []uint32{1}, []byte("one"))
	reopened := reopen(t, bob.dev)
	if got, err := reopened.Decrypt(ctx, envelope(alice, msgs[0])); err != nil || string(got) != "one" {
		t.Fatalf("decrypt after reopen: %q %v", got, err)
	}
	if !bytes.Equal(reopened.AccountID(), bob.acct) || reopened.DeviceID() != 1 {
		t.Fatal("account lost on reopen")
	}
}

func TestIdentityChangeIsRefused(t *testing.T) {
	ctx := context.Background()
	alice, bob := newParty(t, 0xa), newParty(t, 0xb)
	if err := alice.dev.StartSessions(ctx, bob.keys(0), nil); err != nil {
		t.Fatal(err)
	}
	// Bob's account comes back with another identity (a reinstall, or an
	// attacker): Alice must not silently start a new session.
	impostor := newParty(t, 0xb)
	if err := alice.dev.ForgetDevices(bob.acct, []uint32{1}); err != nil {
		t.Fatal(err)
	}
	if err := alice.dev.StartSessions(ctx, impostor.keys(0), nil); !errors.Is(err, e2e.ErrIdentityChanged) {
		t.Fatalf("changed identity: %v", err)
	}
}

func TestPaddingHidesLength(t *testing.T) {
	ctx := context.Background()
	alice, bob := newParty(t, 0xa), newParty(t, 0xb)
	if err := alice.dev.StartSessions(ctx, bob.keys(0), nil); err != nil {
		t.Fatal(err)
	}
	first, _ := alice.dev.Encrypt(ctx, bob.acct, []uint32{1}, []byte("x"))
	if _, err := bob.dev.Decrypt(ctx, envelope(alice, first[0])); err != nil {
		t.Fatal(err)
	}
	reply, _ := bob.dev.Encrypt(ctx, alice.acct, []uint32{1}, []byte("ok"))
	if _, err := alice.dev.Decrypt(ctx, envelope(bob, reply[0])); err != nil {
		t.Fatal(err)
	}
	short, _ := alice.dev.Encrypt(ctx, bob.acct, []uint32{1}, []byte("x"))
	long, _ := alice.dev.Encrypt(ctx, bob.acct, []uint32{1}, bytes.Repeat([]byte("y"), 150))
	if len(short[0].Content) != len(long[0].Content) {
		t.Fatalf("1-byte and 150-byte messages differ in size: %d vs %d", len(short[0].Content), len(long[0].Content))
	}
}

func TestFileModes(t *testing.T) {
	onlyOnDirectory(t)
	ctx := context.Background()
	alice, bob := newParty(t, 0xa), newParty(t, 0xb)
	if err := alice.dev.StartSessions(ctx, bob.keys(0), nil); err != nil {
		t.Fatal(err)
	}
	dir := alice.dev.Dir()
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := os.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		} else {
			files++
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", path, info.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil || files < 4 {
		t.Fatalf("walked %d files: %v", files, err)
	}
}

func TestCreateRefusesExistingDevice(t *testing.T) {
	if onMemory {
		s := &memStorage{}
		if _, _, err := e2e.CreateIn(s, 1); err != nil {
			t.Fatal(err)
		}
		if _, _, err := e2e.CreateIn(s, 1); !errors.Is(err, e2e.ErrExists) {
			t.Fatalf("second create: %v", err)
		}
		if _, err := e2e.OpenStorage(&memStorage{}); !errors.Is(err, e2e.ErrNoDevice) {
			t.Fatalf("open empty: %v", err)
		}
		return
	}
	dir := t.TempDir()
	if _, _, err := e2e.Create(dir, 1); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e2e.Create(dir, 1); !errors.Is(err, e2e.ErrExists) {
		t.Fatalf("second create: %v", err)
	}
	if _, err := e2e.Open(t.TempDir()); !errors.Is(err, e2e.ErrNoDevice) {
		t.Fatalf("open empty: %v", err)
	}
}
