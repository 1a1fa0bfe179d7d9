package messenger

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
)

// mapStore is a MobileStore as an app would write one on its database:
// a map, a lock that Begin takes and Commit or Rollback releases, each
// transaction's writes kept aside until Commit applies them. It checks
// that every call of a transaction comes on Begin's thread (as Android's
// SQLiteDatabase requires) and can be told to fail a write or a commit,
// as a full disk would.
type mapStore struct {
	mu   sync.Mutex // held from Begin to Commit or Rollback
	vals map[string][]byte

	// guarded by st
	st         sync.Mutex
	failWrite  string // a write to a key with this prefix fails ("": none)
	failCommit bool
	listExtra  string // appended to every List answer
	pending    int    // writes the transaction held when failWrite fired
	faults     int
	begins     int
	commits    int
	rollbacks  int
	threads    int // calls made on another thread than their Begin's
}

var errDiskFull = errors.New("mapStore: disk full")

func (s *mapStore) Begin() (MobileTxn, error) {
	s.mu.Lock()
	s.st.Lock()
	s.begins++
	s.st.Unlock()
	return &mapTxn{s: s, writes: map[string][]byte{}, tid: syscall.Gettid()}, nil
}

// snapshot returns the committed values.
func (s *mapStore) snapshot() map[string][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.vals)
}

func (s *mapStore) set(f func(s *mapStore)) {
	s.st.Lock()
	defer s.st.Unlock()
	f(s)
}

func (s *mapStore) get(f func(s *mapStore) int) int {
	s.st.Lock()
	defer s.st.Unlock()
	return f(s)
}

// mapTxn is a mapStore transaction; writes[k] is nil for a delete.
type mapTxn struct {
	s      *mapStore
	writes map[string][]byte
	tid    int
	done   bool
}

var errMapTxnDone = errors.New("mapStore: transaction is over")

// check refuses a call after the transaction ended and counts a call
// from another thread.
func (t *mapTxn) check() error {
	if t.done {
		return errMapTxnDone
	}
	if syscall.Gettid() != t.tid {
		t.s.set(func(s *mapStore) { s.threads++ })
	}
	return nil
}

func (t *mapTxn) write(key string, value []byte) error {
	if err := t.check(); err != nil {
		return err
	}
	var err error
	t.s.set(func(s *mapStore) {
		if s.failWrite != "" && strings.HasPrefix(key, s.failWrite) {
			s.pending, err = len(t.writes), errDiskFull
			s.faults++
		}
	})
	if err != nil {
		return err
	}
	t.writes[key] = value
	return nil
}

func (t *mapTxn) Get(key string) ([]byte, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	v, ok := t.writes[key]
	if !ok {
		v = t.s.vals[key]
	}
	return bytes.Clone(v), nil // nil when there is none
}

func (t *mapTxn) Put(key string, value []byte) error { return t.write(key, bytes.Clone(value)) }

func (t *mapTxn) Delete(key string) error { return t.write(key, nil) }

func (t *mapTxn) List(prefix string) (string, error) {
	if err := t.check(); err != nil {
		return "", err
	}
	var b strings.Builder
	for k, v := range t.s.vals {
		if w, ok := t.writes[k]; (ok && w == nil) || (!ok && v == nil) || !strings.HasPrefix(k, prefix) {
			continue
		}
		b.WriteString(k + "\n")
	}
	for k, v := range t.writes {
		if _, old := t.s.vals[k]; !old && v != nil && strings.HasPrefix(k, prefix) {
			b.WriteString(k + "\n")
		}
	}
	t.s.st.Lock()
	b.WriteString(t.s.listExtra)
	t.s.st.Unlock()
	return b.String(), nil
}

func (t *mapTxn) Commit() error {
	if err := t.check(); err != nil {
		return err
	}
	fail := t.s.get(func(s *mapStore) int {
		if s.failCommit {
			return 1
		}
		return 0
	})
	if fail == 1 {
		return errDiskFull // the transaction stays open: Rollback ends it
	}
	if t.s.vals == nil {
		t.s.vals = map[string][]byte{}
	}
	for k, v := range t.writes {
		if v == nil {
			delete(t.s.vals, k)
		} else {
			t.s.vals[k] = v
		}
	}
	t.end()
	t.s.set(func(s *mapStore) { s.commits++ })
	return nil
}

func (t *mapTxn) Rollback() error {
	if t.done {
		return nil
	}
	if err := t.check(); err != nil {
		return err
	}
	t.end()
	t.s.set(func(s *mapStore) { s.rollbacks++ })
	return nil
}

func (t *mapTxn) end() {
	t.done = true
	t.s.mu.Unlock()
}

// changed returns the keys whose values differ between two snapshots,
// sorted, or nil.
func changed(before, after map[string][]byte) []string {
	var out []string
	for k, v := range after {
		if w, ok := before[k]; !ok || !bytes.Equal(v, w) {
			out = append(out, k)
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// transactWithin runs kv.Transact, failing the test if it does not
// return within patience (a store left locked).
func transactWithin(t *testing.T, kv KV, fn func(e2e.Txn) error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- kv.Transact(context.Background(), fn) }()
	select {
	case err := <-done:
		return err
	case <-time.After(patience):
		t.Fatal("Transact did not return: the store is still locked")
		return nil
	}
}

// TestMobileStoreTransactions holds the MobileStore adapter to
// e2e.Storage's contract: fn's writes land on Commit only when it
// returns nil; an error, a failed write, a failed commit or a panic
// rolls back and releases the store; a missing or empty value reads as
// nil; List answers split at newlines and stay inside the prefix; a
// Txn is dead after fn; every call of a transaction is on one thread.
func TestMobileStoreTransactions(t *testing.T) {
	s := &mapStore{}
	kv := mobileKVOf(s)
	get := func(key string) []byte {
		t.Helper()
		var v []byte
		if err := transactWithin(t, kv, func(tx e2e.Txn) (err error) { v, err = tx.Get(key); return err }); err != nil {
			t.Fatal(err)
		}
		return v
	}

	if err := transactWithin(t, kv, func(tx e2e.Txn) error {
		if err := tx.Put("sessions/aa.1", []byte("one")); err != nil {
			return err
		}
		if v, err := tx.Get("sessions/aa.1"); err != nil || string(v) != "one" {
			t.Errorf("own write read back as %q, %v", v, err)
		}
		return tx.Put("sessions/aa.2", []byte("two"))
	}); err != nil {
		t.Fatal(err)
	}
	if v := get("sessions/aa.2"); string(v) != "two" {
		t.Fatalf("committed value reads %q", v)
	}
	if v := get("sessions/none"); v != nil {
		t.Fatalf("a missing key reads %q", v)
	}
	s.mu.Lock()
	s.vals["empty"] = []byte{}
	s.mu.Unlock()
	if v := get("empty"); v != nil {
		t.Fatalf("an empty value reads %#v, not nil", v)
	}

	// fn's error: nothing of it written, the error returned, the store
	// released.
	before := s.snapshot()
	errBoom := errors.New("boom")
	err := transactWithin(t, kv, func(tx e2e.Txn) error {
		if err := tx.Put("sessions/aa.3", []byte("three")); err != nil {
			return err
		}
		if err := tx.Delete("sessions/aa.1"); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Transact returned %v", err)
	}
	if d := changed(before, s.snapshot()); d != nil {
		t.Fatalf("a failed transaction wrote %q", d)
	}

	// A write the store refuses, after others: the same.
	s.set(func(s *mapStore) { s.failWrite = "prekeys/" })
	err = transactWithin(t, kv, func(tx e2e.Txn) error {
		if err := tx.Put("sessions/aa.4", []byte("four")); err != nil {
			return err
		}
		return tx.Delete("prekeys/7")
	})
	s.set(func(s *mapStore) { s.failWrite = "" })
	if !errors.Is(err, errDiskFull) {
		t.Fatalf("Transact with a refused write returned %v", err)
	}
	if d := changed(before, s.snapshot()); d != nil {
		t.Fatalf("a transaction whose write failed wrote %q", d)
	}

	// A failed Commit: the error, Rollback called (the store is free).
	s.set(func(s *mapStore) { s.failCommit = true })
	err = transactWithin(t, kv, func(tx e2e.Txn) error { return tx.Put("sessions/aa.5", []byte("five")) })
	s.set(func(s *mapStore) { s.failCommit = false })
	if !errors.Is(err, errDiskFull) {
		t.Fatalf("Transact with a failed commit returned %v", err)
	}
	if v := get("sessions/aa.5"); v != nil {
		t.Fatalf("a failed commit wrote %q", v)
	}

	// A panic in fn: rolled back, the store free, the panic goes on.
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the panic was swallowed")
			}
		}()
		_ = kv.Transact(context.Background(), func(tx e2e.Txn) error {
			_ = tx.Put("sessions/aa.6", []byte("six"))
			panic("fn broke")
		})
	}()
	if v := get("sessions/aa.6"); v != nil {
		t.Fatalf("a panicking transaction wrote %q", v)
	}

	// An ended context: Begin is not called.
	begins := s.get(func(s *mapStore) int { return s.begins })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := kv.Transact(ctx, func(e2e.Txn) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Transact on an ended context: %v", err)
	}
	if s.get(func(s *mapStore) int { return s.begins }) != begins {
		t.Fatal("Begin was called on an ended context")
	}

	// List: split at newlines, inside the prefix.
	var keys []string
	var kept e2e.Txn
	if err := transactWithin(t, kv, func(tx e2e.Txn) (err error) {
		kept = tx
		keys, err = tx.List("sessions/")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if slices.Sort(keys); !slices.Equal(keys, []string{"sessions/aa.1", "sessions/aa.2"}) {
		t.Fatalf("List gave %q", keys)
	}
	if _, err := kept.Get("sessions/aa.1"); !errors.Is(err, errMobileTxnDone) {
		t.Fatalf("a Txn used after its Transact: %v", err)
	}
	s.set(func(s *mapStore) { s.listExtra = "identities/aa\n" })
	err = transactWithin(t, kv, func(tx e2e.Txn) error { _, err := tx.List("sessions/"); return err })
	s.set(func(s *mapStore) { s.listExtra = "" })
	if err == nil {
		t.Fatal("a key outside the prefix was taken from List")
	}

	// Transactions from many goroutines, which yield between calls: each
	// stays on its Begin's thread.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 50 {
				_ = kv.Transact(context.Background(), func(tx e2e.Txn) error {
					for range 5 {
						runtime.Gosched() // may move to another thread if not locked
						if _, err := tx.Get("sessions/aa.1"); err != nil {
							return err
						}
					}
					return tx.Put("messenger/n"+string(rune('a'+i)), []byte("x"))
				})
			}
		})
	}
	wg.Wait()
	if n := s.get(func(s *mapStore) int { return s.threads }); n != 0 {
		t.Fatalf("%d calls came on another thread than their transaction's Begin", n)
	}
}

// TestMobileStoreMessages: devices whose state is in an app's
// MobileStore (registered, linked, reopened) exchange messages over a
// real relay, and a send whose transaction fails half-way (the store
// refuses a write) leaves the store as it was and can be sent again.
func TestMobileStoreMessages(t *testing.T) {
	r := newRelay(t)
	aStore, bStore, cStore := &mapStore{}, &mapStore{}, &mapStore{}
	alice, err := RegisterMobileStore(aStore, &r.cfg, "phone")
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	bob, err := RegisterMobileStore(bStore, &r.cfg, "phone")
	if err != nil {
		t.Fatal(err)
	}
	carol, err := RegisterMobileStore(cStore, &r.cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	defer carol.Close()
	arec, brec, crec := newRecorder(), newRecorder(), newRecorder()
	alice.Start(arec)
	bob.Start(brec)
	carol.Start(crec)

	res, err := alice.Send(bob.AccountID(), "hi from a mobile store", nil)
	if err != nil {
		t.Fatal(err)
	}
	if m := nextMessage(t, brec, "hi from a mobile store"); !bytes.Equal(m.ID, res.ID) {
		t.Fatalf("bob got %+v", m)
	}
	if _, err := bob.Send(alice.AccountID(), "hi back", nil); err != nil {
		t.Fatal(err)
	}
	// The automatic delivered receipts change Alice's session with Bob
	// in the background: wait for both (Bob's for "hi", in any order
	// with "hi back"; Alice's for "hi back") before her store is
	// compared, so the comparison sees only the failed send.
	waitMessageAndReceipt(t, arec, "hi back")
	next[*Receipt](t, brec)

	// Alice's first send to Carol starts a session from Carol's bundle:
	// her store refuses Carol's identity key, written after the session
	// in the same transaction. Nothing is written and nothing sent.
	before := aStore.snapshot()
	aStore.set(func(s *mapStore) { s.failWrite = "identities/" })
	if _, err := alice.Send(carol.AccountID(), "to carol", nil); !errors.Is(err, errDiskFull) {
		t.Fatalf("send on a failing store: %v", err)
	}
	aStore.set(func(s *mapStore) { s.failWrite = "" })
	if n := aStore.get(func(s *mapStore) int { return s.faults }); n == 0 {
		t.Fatal("the store's fault never fired")
	}
	if p := aStore.get(func(s *mapStore) int { return s.pending }); p == 0 {
		t.Fatal("the refused write was the transaction's first: the rollback is not tested")
	}
	if d := changed(before, aStore.snapshot()); d != nil {
		t.Fatalf("a failed send changed %q in the store", d)
	}
	if aStore.get(func(s *mapStore) int { return s.rollbacks }) == 0 {
		t.Fatal("no transaction was rolled back")
	}
	if _, err := alice.Send(carol.AccountID(), "to carol", nil); err != nil {
		t.Fatal(err)
	}
	nextMessage(t, crec, "to carol")

	// Bob links a second device onto a store of its own, and reopens
	// his first from its store (the app restarted).
	b2Store := &mapStore{}
	l, err := StartMobileLinkStore(b2Store, &r.cfg, "tablet")
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.ApproveLink(l.URI); err != nil {
		t.Fatal(err)
	}
	bob2, err := l.Wait(int64(patience / time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer bob2.Close()
	if !bytes.Equal(bob2.AccountID(), bob.AccountID()) || bob2.DeviceID() < 2 {
		t.Fatalf("linked as %x/%d", bob2.AccountID(), bob2.DeviceID())
	}
	b2rec := newRecorder()
	bob2.Start(b2rec)
	bob.Close()
	if bob, err = OpenMobileStore(bStore, &r.cfg); err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	bob.Start(brec)
	if _, err := alice.Send(bob.AccountID(), "to both of bob's", nil); err != nil {
		t.Fatal(err)
	}
	nextMessage(t, brec, "to both of bob's")
	nextMessage(t, b2rec, "to both of bob's")
	if _, err := bob2.Send(alice.AccountID(), "from the tablet", nil); err != nil {
		t.Fatal(err)
	}
	nextMessage(t, arec, "from the tablet")
	if m := nextMessage(t, brec, "from the tablet"); !m.FromSelf {
		t.Fatalf("bob's phone got %+v", m)
	}

	for name, s := range map[string]*mapStore{"alice": aStore, "bob": bStore, "bob's tablet": b2Store} {
		if n := s.get(func(s *mapStore) int { return s.threads }); n != 0 {
			t.Errorf("%s's store: %d calls on another thread than their Begin", name, n)
		}
		keys := slices.Collect(maps.Keys(s.snapshot()))
		for _, prefix := range []string{"device.json", "sessions/", "prekeys/", "signed/", "identities/"} {
			if !slices.ContainsFunc(keys, func(k string) bool { return strings.HasPrefix(k, prefix) }) {
				t.Errorf("%s's store has nothing under %q", name, prefix)
			}
		}
	}
}

// waitMessageAndReceipt waits for a message with the text and a receipt,
// which may come in either order.
func waitMessageAndReceipt(t *testing.T, r *recorder, text string) {
	t.Helper()
	deadline := time.After(patience)
	gotMessage, gotReceipt := false, false
	for !gotMessage || !gotReceipt {
		select {
		case ev := <-r.events:
			switch x := ev.(type) {
			case *Message:
				gotMessage = gotMessage || x.Text == text
			case *Receipt:
				gotReceipt = true
			}
		case <-deadline:
			t.Fatalf("within %v: message %q %v, receipt %v", patience, text, gotMessage, gotReceipt)
		}
	}
}
