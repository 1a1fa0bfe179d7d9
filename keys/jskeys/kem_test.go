package jskeys_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pigeonhole/pigeonhole/keys"
	"github.com/pigeonhole/pigeonhole/keys/jskeys"
	"github.com/pigeonhole/pigeonhole/keys/keystest"
)

// kemRecords lists the bucket's KEM prekey records and indexes of acct.
func kemRecords(t *testing.T, ctx context.Context, kv jetstream.KeyValue, acct keys.AccountID) []string {
	t.Helper()
	var out []string
	for _, filter := range []string{"k." + acct.Hex() + ".>", "q." + acct.Hex() + ".>"} {
		lister, err := kv.ListKeysFiltered(ctx, filter)
		if err != nil {
			t.Fatal(err)
		}
		for k := range lister.Keys() {
			out = append(out, k)
		}
	}
	return out
}

// TestKemPreKeyRecords: one-time KEM prekeys are records of their own,
// each carrying the cluster-key MAC; a forged record or index is refused
// with ErrBadRecord and counted by kind; a claim deletes the claimed
// record; removing the device deletes all of them.
func TestKemPreKeyRecords(t *testing.T) {
	nc := startNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var (
		mu       sync.Mutex
		rejected = map[string]int{}
	)
	s, err := jskeys.Open(ctx, nc, jskeys.Config{ClusterKey: testKey, Rejected: func(kind string) {
		mu.Lock()
		defer mu.Unlock()
		rejected[kind]++
	}})
	if err != nil {
		t.Fatal(err)
	}
	dev, ik := keystest.NewDevice(t)
	acct, err := s.CreateAccount(ctx, dev, nil)
	if err != nil {
		t.Fatal(err)
	}
	id2, err := s.AddDevice(ctx, acct, dev, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint32{1, id2} {
		if _, err := s.AddKemPreKeys(ctx, acct, id, keystest.KemPreKeys(t, ik, 1, 3)); err != nil {
			t.Fatal(err)
		}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, "PIGEONHOLE_KEYS")
	if err != nil {
		t.Fatal(err)
	}
	if got := kemRecords(t, ctx, kv, acct); len(got) != 8 { // 2 × (3 records + 1 index)
		t.Fatalf("records %v, want 8", got)
	}
	if _, err := s.FetchBundles(ctx, acct, nil); err != nil {
		t.Fatal(err)
	}
	prefix := "k." + acct.Hex() + ".1."
	left := 0
	for _, k := range kemRecords(t, ctx, kv, acct) {
		if strings.HasPrefix(k, prefix) {
			left++
			if k == prefix+"1" {
				t.Errorf("claimed record %s is still stored", k)
			}
		}
	}
	if left != 2 {
		t.Errorf("device 1 has %d KEM prekey records after one claim, want 2", left)
	}

	// Removing device 2 deletes its records and index.
	if err := s.RemoveDevice(ctx, acct, id2); err != nil {
		t.Fatal(err)
	}
	for _, k := range kemRecords(t, ctx, kv, acct) {
		if !strings.HasPrefix(k, prefix) && k != "q."+acct.Hex()+".1" {
			t.Errorf("record %s of the removed device is still stored", k)
		}
	}

	// Forgeries: an index naming a record, and a record's value.
	e, err := kv.Get(ctx, prefix+"2")
	if err != nil {
		t.Fatal(err)
	}
	genuine := e.Value()
	if _, err := kv.Put(ctx, prefix+"2", genuine[:len(genuine)-32]); err != nil { // the value without its tag
		t.Fatal(err)
	}
	if _, err := s.FetchBundles(ctx, acct, nil); !errors.Is(err, jskeys.ErrBadRecord) {
		t.Errorf("forged KEM prekey: FetchBundles: %v; want ErrBadRecord", err)
	}
	if _, err := kv.Put(ctx, "q."+acct.Hex()+".1", []byte(`[2,3]`)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.KemPreKeyCount(ctx, acct, 1); !errors.Is(err, jskeys.ErrBadRecord) {
		t.Errorf("forged KEM index: KemPreKeyCount: %v; want ErrBadRecord", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if rejected["kem_prekey"] != 1 || rejected["kem_prekey_index"] != 1 {
		t.Errorf("rejections counted %v, want kem_prekey 1, kem_prekey_index 1", rejected)
	}
}
