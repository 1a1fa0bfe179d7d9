package keystest

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"go.mau.fi/libsignal/keys/identity"
	"go.mau.fi/libsignal/util/keyhelper"

	"github.com/pigeonhole/pigeonhole/keys"
)

// linkedDevice is a new device sharing ik, the account's identity.
func linkedDevice(t *testing.T, ik *identity.KeyPair, name string) keys.Device {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return keys.Device{
		AuthKey:        pub,
		IdentityKey:    ik.PublicKey().Serialize(),
		RegistrationID: keyhelper.GenerateRegistrationID(),
		SignedPreKey:   signedPreKey(t, ik, 7),
		Name:           []byte(name),
	}
}

func testLinkCodes(t *testing.T, open Open) {
	now := time.Unix(1_800_000_000, 0)
	s := open(t, keys.Config{MaxDevices: 3, Now: func() time.Time { return now }})
	primary, ik := newDevice(t)
	acct, err := s.CreateAccount(ctx(), primary, nil)
	if err != nil {
		t.Fatal(err)
	}
	other, otherIK := newDevice(t)
	otherAcct, err := s.CreateAccount(ctx(), other, nil)
	if err != nil {
		t.Fatal(err)
	}

	code, expires, err := s.CreateLinkCode(ctx(), acct, 10*time.Minute)
	if err != nil || len(code) != keys.LinkCodeSize || !expires.Equal(now.Add(10*time.Minute)) {
		t.Fatalf("CreateLinkCode = %x, %v, %v", code, expires, err)
	}
	// Another account's code, a wrong identity and a bad code are refused
	// without using the code up.
	otherCode, _, _ := s.CreateLinkCode(ctx(), otherAcct, time.Minute)
	if _, err := s.LinkDevice(ctx(), acct, otherCode, linkedDevice(t, ik, "x"), nil); !errors.Is(err, keys.ErrBadLinkCode) {
		t.Errorf("other account's code: %v", err)
	}
	if _, err := s.LinkDevice(ctx(), acct, code, linkedDevice(t, otherIK, "x"), nil); !errors.Is(err, keys.ErrInvalidKey) {
		t.Errorf("another identity: %v", err)
	}
	if _, err := s.LinkDevice(ctx(), acct, make([]byte, 16), linkedDevice(t, ik, "x"), nil); !errors.Is(err, keys.ErrBadLinkCode) {
		t.Errorf("unknown code: %v", err)
	}
	if _, err := s.LinkDevice(ctx(), acct, code[:8], linkedDevice(t, ik, "x"), nil); !errors.Is(err, keys.ErrBadLinkCode) {
		t.Errorf("short code: %v", err)
	}

	id, err := s.LinkDevice(ctx(), acct, code, linkedDevice(t, ik, "laptop"), preKeys(t, 1, 5))
	if err != nil || id != 2 {
		t.Fatalf("LinkDevice = %d, %v", id, err)
	}
	if _, err := s.LinkDevice(ctx(), acct, code, linkedDevice(t, ik, "again"), nil); !errors.Is(err, keys.ErrBadLinkCode) {
		t.Errorf("reused code: %v", err)
	}
	if n, _ := s.PreKeyCount(ctx(), acct, 2); n != 5 {
		t.Errorf("linked device has %d prekeys", n)
	}

	// Expiry.
	code, _, _ = s.CreateLinkCode(ctx(), acct, time.Minute)
	now = now.Add(time.Minute)
	if _, err := s.LinkDevice(ctx(), acct, code, linkedDevice(t, ik, "late"), nil); !errors.Is(err, keys.ErrBadLinkCode) {
		t.Errorf("expired code: %v", err)
	}
	// A new code replaces the last.
	first, _, _ := s.CreateLinkCode(ctx(), acct, time.Minute)
	second, _, _ := s.CreateLinkCode(ctx(), acct, time.Minute)
	if _, err := s.LinkDevice(ctx(), acct, first, linkedDevice(t, ik, "old"), nil); !errors.Is(err, keys.ErrBadLinkCode) {
		t.Errorf("replaced code: %v", err)
	}
	if _, err := s.LinkDevice(ctx(), acct, second, linkedDevice(t, ik, "tablet"), nil); err != nil {
		t.Fatal(err)
	}
	// The device cap (3 here) holds, and the code survives a refusal.
	code, _, _ = s.CreateLinkCode(ctx(), acct, time.Minute)
	if _, err := s.LinkDevice(ctx(), acct, code, linkedDevice(t, ik, "fourth"), nil); !errors.Is(err, keys.ErrTooManyDevices) {
		t.Fatalf("fourth device: %v", err)
	}
	if err := s.RemoveDevice(ctx(), acct, 2); err != nil {
		t.Fatal(err)
	}
	if id, err := s.LinkDevice(ctx(), acct, code, linkedDevice(t, ik, "fourth"), nil); err != nil || id != 4 {
		t.Fatalf("after a removal: %d, %v (ids are never reused)", id, err)
	}
}

func testDeviceNamesAndLastSeen(t *testing.T, open Open) {
	s := open(t, keys.Config{})
	primary, ik := newDevice(t)
	primary.Name = []byte{1, 2, 3}
	acct, err := s.CreateAccount(ctx(), primary, nil)
	if err != nil {
		t.Fatal(err)
	}
	code, _, _ := s.CreateLinkCode(ctx(), acct, time.Minute)
	if _, err := s.LinkDevice(ctx(), acct, code, linkedDevice(t, ik, "sealed-name"), nil); err != nil {
		t.Fatal(err)
	}
	seen := time.Date(2026, 11, 23, 17, 4, 5, 0, time.UTC)
	if err := s.Seen(ctx(), acct, 2, seen); err != nil {
		t.Fatal(err)
	}
	devs, err := s.Devices(ctx(), acct)
	if err != nil || len(devs) != 2 {
		t.Fatalf("Devices = %v, %v", devs, err)
	}
	if string(devs[0].Name) != "\x01\x02\x03" || string(devs[1].Name) != "sealed-name" {
		t.Errorf("names %q %q", devs[0].Name, devs[1].Name)
	}
	if !devs[0].LastSeen.IsZero() || !devs[1].LastSeen.Equal(time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("last seen %v %v, want never and the day only", devs[0].LastSeen, devs[1].LastSeen)
	}
	long := linkedDevice(t, ik, string(make([]byte, keys.MaxNameBytes+1)))
	code, _, _ = s.CreateLinkCode(ctx(), acct, time.Minute)
	if _, err := s.LinkDevice(ctx(), acct, code, long, nil); !errors.Is(err, keys.ErrInvalidKey) {
		t.Errorf("long name: %v", err)
	}
}
