package keys_test

import (
	"bytes"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/pigeonhole/pigeonhole/keys"
	"github.com/pigeonhole/pigeonhole/keys/keystest"
)

// countUnder counts the keys in db that start with prefix and contain
// the account id.
func countWith(t *testing.T, db *pebble.DB, prefix string, a keys.AccountID) int {
	t.Helper()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte(prefix), UpperBound: []byte(prefix[:len(prefix)-1] + "0")})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		if bytes.Contains(it.Key(), a[:]) {
			n++
		}
	}
	return n
}

// TestKemPreKeysDeletedWithDeviceAndAccount: removing a device deletes
// its one-time KEM prekeys (its last-resort one is in its record), and
// deleting the account deletes every device's.
func TestKemPreKeysDeletedWithDeviceAndAccount(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	s, err := keys.Open(db, keys.Config{})
	if err != nil {
		t.Fatal(err)
	}
	dev, ik := keystest.NewDevice(t)
	lr := keystest.KemPreKey(t, ik, 99)
	dev.KemLastResort = &lr
	acct, err := s.CreateAccount(ctx(), dev, nil)
	if err != nil {
		t.Fatal(err)
	}
	id2, err := s.AddDevice(ctx(), acct, dev, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint32{1, id2} {
		if _, err := s.AddKemPreKeys(ctx(), acct, id, keystest.KemPreKeys(t, ik, 1, 3)); err != nil {
			t.Fatal(err)
		}
	}
	if n := countWith(t, db, "k/k/", acct); n != 6 {
		t.Fatalf("%d KEM prekey records stored, want 6", n)
	}
	if err := s.RemoveDevice(ctx(), acct, id2); err != nil {
		t.Fatal(err)
	}
	if n := countWith(t, db, "k/k/", acct); n != 3 {
		t.Fatalf("after removing a device %d KEM prekey records are left, want 3", n)
	}
	if _, err := s.DeleteAccount(ctx(), acct); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"k/k/", "k/d/"} {
		if n := countWith(t, db, p, acct); n != 0 {
			t.Errorf("after deleting the account %d %s records are left", n, p)
		}
	}
}
