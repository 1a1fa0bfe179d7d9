package keys_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"go.mau.fi/libsignal/keys/identity"
	"go.mau.fi/libsignal/logger"
	"go.mau.fi/libsignal/serialize"
	"go.mau.fi/libsignal/util/keyhelper"

	"github.com/pigeonhole/pigeonhole/keys"
)

type quiet struct{}

func (quiet) Debug(string, string)   {}
func (quiet) Info(string, string)    {}
func (quiet) Warning(string, string) {}
func (quiet) Error(string, string)   {}
func (quiet) Configure(string)       {}

func init() { logger.Logger = quiet{} }

type silentPebble struct{}

func (silentPebble) Infof(string, ...any)         {}
func (silentPebble) Errorf(string, ...any)        {}
func (silentPebble) Fatalf(f string, args ...any) { panic(f) }

func openDB(t testing.TB, dir string) *pebble.DB {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{FormatMajorVersion: pebble.FormatNewest, Logger: silentPebble{}})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func openStore(t testing.TB, cfg keys.Config) *keys.Store {
	t.Helper()
	db := openDB(t, t.TempDir())
	t.Cleanup(func() { db.Close() })
	s, err := keys.Open(db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var ser = serialize.NewProtoBufSerializer()

// newDevice returns a device with real Signal keys and its identity.
func newDevice(t testing.TB) (keys.Device, *identity.KeyPair) {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ik, err := keyhelper.GenerateIdentityKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	return keys.Device{
		AuthKey:        pub,
		IdentityKey:    ik.PublicKey().Serialize(),
		RegistrationID: keyhelper.GenerateRegistrationID(),
		SignedPreKey:   signedPreKey(t, ik, 1),
	}, ik
}

func signedPreKey(t testing.TB, ik *identity.KeyPair, id uint32) keys.SignedPreKey {
	t.Helper()
	spk, err := keyhelper.GenerateSignedPreKey(ik, id, ser.SignedPreKeyRecord)
	if err != nil {
		t.Fatal(err)
	}
	sig := spk.Signature()
	return keys.SignedPreKey{ID: id, PublicKey: spk.KeyPair().PublicKey().Serialize(), Signature: sig[:]}
}

// preKeys returns n real one-time prekeys with ids start..start+n-1.
func preKeys(t testing.TB, start uint32, n int) []keys.PreKey {
	t.Helper()
	pks, err := keyhelper.GeneratePreKeys(int(start), int(start)+n-1, ser.PreKeyRecord)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]keys.PreKey, len(pks))
	for i, p := range pks {
		out[i] = keys.PreKey{ID: p.ID().Value, PublicKey: p.KeyPair().PublicKey().Serialize()}
	}
	return out
}

func ctx() context.Context { return context.Background() }
