package keystest

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/pigeonhole/pigeonhole/keys"
)

// AccessDirectory is a key directory that keeps unidentified-access
// verifiers (relay.AccessDirectory), and creates accounts.
type AccessDirectory interface {
	CreateAccount(ctx context.Context, dev keys.Device, prekeys []keys.PreKey) (keys.AccountID, error)
	SetUnidentifiedAccess(ctx context.Context, acct keys.AccountID, ua keys.UnidentifiedAccess) error
	UnidentifiedAccess(ctx context.Context, acct keys.AccountID) (keys.UnidentifiedAccess, error)
}

// RunAccess runs the unidentified-access behaviour tests against a new,
// empty directory from open.
func RunAccess(t *testing.T, open func(t *testing.T) AccessDirectory) {
	t.Run("SetRotateClear", func(t *testing.T) { testAccessSetRotateClear(t, open(t)) })
	t.Run("Refusals", func(t *testing.T) { testAccessRefusals(t, open(t)) })
}

func verifier(b byte) []byte { return bytes.Repeat([]byte{b}, keys.AccessVerifierSize) }

func wantAccess(t *testing.T, d AccessDirectory, a keys.AccountID, want keys.UnidentifiedAccess, what string) {
	t.Helper()
	got, err := d.UnidentifiedAccess(ctx(), a)
	if err != nil {
		t.Fatalf("%s: UnidentifiedAccess: %v", what, err)
	}
	if !bytes.Equal(got.Verifier, want.Verifier) || got.AllowAnyone != want.AllowAnyone {
		t.Fatalf("%s: UnidentifiedAccess = {%x %v}, want {%x %v}", what, got.Verifier, got.AllowAnyone, want.Verifier, want.AllowAnyone)
	}
}

// testAccessSetRotateClear: an account starts with nothing set; what it
// sets is read back; a new verifier replaces the old one (rotation);
// another account's setting is its own; an empty verifier clears it.
func testAccessSetRotateClear(t *testing.T, d AccessDirectory) {
	dev, _ := newDevice(t)
	a, err := d.CreateAccount(ctx(), dev, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := d.CreateAccount(ctx(), dev, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantAccess(t, d, a, keys.UnidentifiedAccess{}, "new account")
	first := keys.UnidentifiedAccess{Verifier: verifier(1)}
	if err := d.SetUnidentifiedAccess(ctx(), a, first); err != nil {
		t.Fatal(err)
	}
	wantAccess(t, d, a, first, "set")
	wantAccess(t, d, b, keys.UnidentifiedAccess{}, "the other account")
	rotated := keys.UnidentifiedAccess{Verifier: verifier(2), AllowAnyone: true}
	if err := d.SetUnidentifiedAccess(ctx(), a, rotated); err != nil {
		t.Fatal(err)
	}
	wantAccess(t, d, a, rotated, "rotated")
	anyone := keys.UnidentifiedAccess{AllowAnyone: true}
	if err := d.SetUnidentifiedAccess(ctx(), a, anyone); err != nil {
		t.Fatal(err)
	}
	wantAccess(t, d, a, anyone, "verifier cleared, anyone allowed")
}

// testAccessRefusals: unknown accounts and verifiers of the wrong size
// are refused and change nothing.
func testAccessRefusals(t *testing.T, d AccessDirectory) {
	var unknown keys.AccountID
	unknown[0] = 0xee
	if err := d.SetUnidentifiedAccess(ctx(), unknown, keys.UnidentifiedAccess{Verifier: verifier(1)}); !errors.Is(err, keys.ErrUnknownAccount) {
		t.Errorf("set on an unknown account: %v, want ErrUnknownAccount", err)
	}
	if _, err := d.UnidentifiedAccess(ctx(), unknown); !errors.Is(err, keys.ErrUnknownAccount) {
		t.Errorf("read an unknown account: %v, want ErrUnknownAccount", err)
	}
	dev, _ := newDevice(t)
	a, err := d.CreateAccount(ctx(), dev, nil)
	if err != nil {
		t.Fatal(err)
	}
	good := keys.UnidentifiedAccess{Verifier: verifier(3)}
	if err := d.SetUnidentifiedAccess(ctx(), a, good); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 16, keys.AccessVerifierSize + 1} {
		err := d.SetUnidentifiedAccess(ctx(), a, keys.UnidentifiedAccess{Verifier: make([]byte, n)})
		if !errors.Is(err, keys.ErrInvalidKey) {
			t.Errorf("a %d-byte verifier: %v, want ErrInvalidKey", n, err)
		}
	}
	wantAccess(t, d, a, good, "after the refusals")
}
