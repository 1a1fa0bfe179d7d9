package e2e_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
)

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
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "device.json"), b, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := e2e.Open(dir); !errors.Is(err, e2e.ErrDamaged) {
				t.Fatalf("Open: %v, want ErrDamaged", err)
			}
		})
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "device.json"), []byte(`{"auth_key": [`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := e2e.Open(dir); !errors.Is(err, e2e.ErrDamaged) {
		t.Fatalf("truncated JSON: %v, want ErrDamaged", err)
	}
}
