package e2e_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"

	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
)

// TestDirStorageTransaction: writes land only when the function returns
// nil, as 0600 files under the key's path; reads and lists see the
// transaction's own writes; keys that would leave the directory or name
// the lock are refused.
func TestDirStorageTransaction(t *testing.T) {
	onlyOnDirectory(t)
	ctx := context.Background()
	dir := t.TempDir()
	s := e2e.NewDirStorage(dir)
	boom := errors.New("boom")
	err := s.Transact(ctx, func(tx e2e.Txn) error {
		if err := tx.Put("groups/ab/cd.1", []byte("x")); err != nil {
			return err
		}
		if b, err := tx.Get("groups/ab/cd.1"); err != nil || string(b) != "x" {
			t.Errorf("read own write: %q, %v", b, err)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Transact: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "groups")); !os.IsNotExist(err) {
		t.Fatalf("a failed transaction wrote: %v", err)
	}
	if err := s.Transact(ctx, func(tx e2e.Txn) error {
		for _, k := range []string{"groups/ab/cd.1", "groups/ab/cd.2", "sessions/ab.1"} {
			if err := tx.Put(k, []byte(k)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "groups", "ab", "cd.2"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("groups/ab/cd.2: %v, %v", fi, err)
	}
	if err := s.Transact(ctx, func(tx e2e.Txn) error {
		if err := tx.Delete("groups/ab/cd.1"); err != nil {
			return err
		}
		if err := tx.Put("groups/ab/cd.3", []byte("3")); err != nil {
			return err
		}
		keys, err := tx.List("groups/ab/")
		slices.Sort(keys)
		if err != nil || !slices.Equal(keys, []string{"groups/ab/cd.2", "groups/ab/cd.3"}) {
			t.Errorf("List in a transaction: %q, %v", keys, err)
		}
		if keys, err := tx.List(""); err != nil || len(keys) != 3 {
			t.Errorf("List of everything: %q, %v (the lock is no key)", keys, err)
		}
		for _, bad := range []string{"../x", "lock", "a//b", ".tmp-1", "A", "a/", ""} {
			if err := tx.Put(bad, []byte("x")); err == nil {
				t.Errorf("key %q accepted", bad)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "groups", "ab", "cd.1")); !os.IsNotExist(err) {
		t.Fatalf("deleted key still a file: %v", err)
	}
}

// TestDirStorageLocksAgainstOtherProcesses: while a transaction runs, the
// directory's lock file is locked for any other open file description
// (another process's), and free again afterwards.
func TestDirStorageLocksAgainstOtherProcesses(t *testing.T) {
	onlyOnDirectory(t)
	dir := t.TempDir()
	tryLock := func() error {
		f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	}
	if err := e2e.NewDirStorage(dir).Transact(context.Background(), func(e2e.Txn) error {
		if err := tryLock(); !errors.Is(err, syscall.EWOULDBLOCK) {
			t.Errorf("lock taken by another during a transaction: %v", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := tryLock(); err != nil {
		t.Fatalf("lock after the transaction: %v", err)
	}
}

// TestTwoOpenersShareTheState: two Devices on one state (two processes
// of one device) making prekeys at the same time never hand out one id
// twice, as each takes the counter from the storage in its transaction.
func TestTwoOpenersShareTheState(t *testing.T) {
	first, _ := createDevice(t, 0)
	second := reopen(t, first)
	const rounds, n = 10, 5
	ids := make(chan uint32, 2*rounds*n)
	var wg sync.WaitGroup
	for _, d := range []*e2e.Device{first, second} {
		wg.Go(func() {
			for range rounds {
				pks, err := d.NewPreKeys(n)
				if err != nil {
					t.Error(err)
					return
				}
				for _, p := range pks {
					ids <- p.ID
				}
			}
		})
	}
	wg.Wait()
	close(ids)
	seen := map[uint32]bool{}
	for id := range ids {
		if seen[id] {
			t.Fatalf("prekey id %d handed out twice", id)
		}
		seen[id] = true
	}
	if len(seen) != 2*rounds*n {
		t.Fatalf("%d prekeys", len(seen))
	}
}

// TestStaleOpenerKeepsOthersChanges: a Device opened before another
// process rotated the signed prekey and made KEM prekeys does not write
// its old counters back when it makes one-time prekeys, so no id is
// handed out twice afterwards.
func TestStaleOpenerKeepsOthersChanges(t *testing.T) {
	first, _ := createDevice(t, 0)
	stale := reopen(t, first)
	spk, err := first.RotateSignedPreKey()
	if err != nil {
		t.Fatal(err)
	}
	kem, err := first.NewKEMPreKeys(1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stale.NewPreKeys(1); err != nil {
		t.Fatal(err)
	}
	again := reopen(t, first)
	if next, err := again.RotateSignedPreKey(); err != nil || next.ID != spk.ID+1 {
		t.Fatalf("signed prekey after a stale opener's write: id %d, %v; want %d", next.ID, err, spk.ID+1)
	}
	if next, err := again.NewKEMPreKeys(1); err != nil || next[0].ID != kem[0].ID+1 {
		t.Fatalf("KEM prekey after a stale opener's write: id %d, %v; want %d", next[0].ID, err, kem[0].ID+1)
	}
}
