package keys_test

import (
	"testing"

	"github.com/pigeonhole/pigeonhole/keys"
	"github.com/pigeonhole/pigeonhole/keys/keystest"
)

// TestBehaviour runs the tests every key directory passes (the JetStream
// store runs the same ones).
func TestBehaviour(t *testing.T) {
	keystest.Run(t, func(t *testing.T, cfg keys.Config) keystest.Directory { return openStore(t, cfg) })
}

func TestClaimsSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	s, _ := keys.Open(db, keys.Config{})
	dev, _ := keystest.NewDevice(t)
	acct, err := s.CreateAccount(ctx(), dev, keystest.PreKeys(t, 1, 2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.FetchBundles(ctx(), acct, nil); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = openDB(t, dir)
	defer db.Close()
	s, _ = keys.Open(db, keys.Config{})
	bs, err := s.FetchBundles(ctx(), acct, nil)
	if err != nil {
		t.Fatal(err)
	}
	if bs[0].PreKey == nil || bs[0].PreKey.ID != 2 {
		t.Fatalf("after reopen: %+v", bs[0].PreKey)
	}
}

func TestAccountIDStringIsShort(t *testing.T) {
	a := keys.AccountID{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	if got := a.String(); got != "deadbe…" {
		t.Fatalf("String() = %q", got)
	}
}
