package e2e_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
)

// openDamaged opens a device whose device.json holds b, in a directory
// or in memory as the run goes.
func openDamaged(t *testing.T, b []byte) error {
	t.Helper()
	if onMemory {
		s := &memStorage{}
		if err := s.Transact(context.Background(), func(tx e2e.Txn) error { return tx.Put("device.json", b) }); err != nil {
			t.Fatal(err)
		}
		_, err := e2e.OpenStorage(s)
		return err
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "device.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := e2e.Open(dir)
	return err
}

// TestDamagedStateIsRefused: a device file that is not JSON, has keys of
// the wrong size, or an identity key that is empty, short or of another
// type is ErrDamaged, and never a panic (libsignal's DecodePoint panics
// on an empty key and zero-pads a short one).
func TestDamagedStateIsRefused(t *testing.T) {
	good := map[string]any{"registration_id": 1, "auth_key": make([]byte, 64), "identity_private": make([]byte, 32)}
	for name, pub := range map[string][]byte{"empty": {}, "short": {5, 1, 2}, "wrong type": append([]byte{6}, make([]byte, 32)...)} {
		t.Run(name, func(t *testing.T) {
			st := map[string]any{"identity_public": pub}
			for k, v := range good {
				st[k] = v
			}
			b, _ := json.Marshal(st)
			if err := openDamaged(t, b); !errors.Is(err, e2e.ErrDamaged) {
				t.Fatalf("Open: %v, want ErrDamaged", err)
			}
		})
	}
	if err := openDamaged(t, []byte(`{"auth_key": [`)); !errors.Is(err, e2e.ErrDamaged) {
		t.Fatalf("truncated JSON: %v, want ErrDamaged", err)
	}
}

// TestDamagedSessionIsRefused: a session record that is not JSON is
// ErrDamaged when it is used, on either storage.
func TestDamagedSessionIsRefused(t *testing.T) {
	ctx := context.Background()
	alice, bob := newParty(t, 0xa), newParty(t, 0xb)
	if err := alice.dev.StartSessions(ctx, bob.keys(0), nil); err != nil {
		t.Fatal(err)
	}
	store(t, alice.dev, "sessions/"+addressOf(bob)+".1", []byte(`{"v": 1, "record": `))
	if _, err := alice.dev.Encrypt(ctx, bob.acct, []uint32{1}, []byte("x")); !errors.Is(err, e2e.ErrDamaged) {
		t.Fatalf("encrypt on a damaged session: %v, want ErrDamaged", err)
	}
}
