// Package keystest holds the behaviour every key directory backend must
// have, as tests: the Pebble store (package keys) and the JetStream store
// (package jskeys) both run them, so the relay gets the same behaviour
// from either.
package keystest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"go.mau.fi/libsignal/keys/identity"
	"go.mau.fi/libsignal/logger"
	"go.mau.fi/libsignal/serialize"
	"go.mau.fi/libsignal/util/keyhelper"

	"github.com/pigeonhole/pigeonhole/keys"
)

// Directory is the relay's view of a key directory (relay.KeyDirectory),
// and AddDevice.
type Directory interface {
	CreateAccount(ctx context.Context, dev keys.Device, prekeys []keys.PreKey) (keys.AccountID, error)
	AddDevice(ctx context.Context, acct keys.AccountID, dev keys.Device, prekeys []keys.PreKey) (uint32, error)
	Device(ctx context.Context, acct keys.AccountID, id uint32) (keys.Device, error)
	DeviceIDs(ctx context.Context, acct keys.AccountID) ([]uint32, error)
	AddPreKeys(ctx context.Context, acct keys.AccountID, id uint32, pks []keys.PreKey) (int, error)
	PreKeyCount(ctx context.Context, acct keys.AccountID, id uint32) (int, error)
	RotateSignedPreKey(ctx context.Context, acct keys.AccountID, id uint32, spk keys.SignedPreKey) error
	FetchBundles(ctx context.Context, acct keys.AccountID, mayClaim func(device uint32) bool) ([]keys.Bundle, error)
	Devices(ctx context.Context, acct keys.AccountID) ([]keys.Device, error)
	RemoveDevice(ctx context.Context, acct keys.AccountID, id uint32) error
	CreateLinkCode(ctx context.Context, acct keys.AccountID, ttl time.Duration) ([]byte, time.Time, error)
	LinkDevice(ctx context.Context, acct keys.AccountID, code []byte, dev keys.Device, prekeys []keys.PreKey) (uint32, error)
	Seen(ctx context.Context, acct keys.AccountID, id uint32, t time.Time) error
	AddKemPreKeys(ctx context.Context, acct keys.AccountID, id uint32, kpks []keys.KemPreKey) (int, error)
	KemPreKeyCount(ctx context.Context, acct keys.AccountID, id uint32) (int, bool, error)
	RotateKemLastResort(ctx context.Context, acct keys.AccountID, id uint32, k keys.KemPreKey) error
}

// Open returns a new, empty directory with cfg's limits and clock.
type Open func(t *testing.T, cfg keys.Config) Directory

// Run runs every behaviour test against directories from open.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(*testing.T, Open)
	}{
		{"FetchClaimsEachPreKeyThenNone", testFetchClaimsEachPreKeyThenNone},
		{"SignedPreKeyMustVerify", testSignedPreKeyMustVerify},
		{"MalformedKeysAreRefused", testMalformedKeysAreRefused},
		{"PreKeyLimits", testPreKeyLimits},
		{"ConcurrentClaimsNeverRepeat", testConcurrentClaimsNeverRepeat},
		{"RefusedClaimKeepsPreKeys", testRefusedClaimKeepsPreKeys},
		{"RotateSignedPreKey", testRotateSignedPreKey},
		{"DevicesAddRemove", testDevicesAddRemove},
		{"LinkCodes", testLinkCodes},
		{"DeviceNamesAndLastSeen", testDeviceNamesAndLastSeen},
		{"KemClaimsThenLastResort", testKemClaimsThenLastResort},
		{"KemPreKeysMustVerify", testKemPreKeysMustVerify},
		{"KemPreKeyLimits", testKemPreKeyLimits},
		{"ConcurrentKemClaimsNeverRepeat", testConcurrentKemClaimsNeverRepeat},
		{"RefusedClaimKeepsKemPreKeys", testRefusedClaimKeepsKemPreKeys},
		{"RotateKemLastResort", testRotateKemLastResort},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

type quiet struct{}

func (quiet) Debug(string, string)   {}
func (quiet) Info(string, string)    {}
func (quiet) Warning(string, string) {}
func (quiet) Error(string, string)   {}
func (quiet) Configure(string)       {}

func init() { logger.Logger = quiet{} }

var ser = serialize.NewProtoBufSerializer()

// NewDevice returns a device with real Signal keys and its identity.
func NewDevice(t testing.TB) (keys.Device, *identity.KeyPair) { return newDevice(t) }

// PreKeys returns n real one-time prekeys with ids start..start+n-1.
func PreKeys(t testing.TB, start uint32, n int) []keys.PreKey { return preKeys(t, start, n) }

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
