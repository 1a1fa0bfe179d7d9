package messenger

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
)

// memKV is a KV in memory, as an app's database would be one: a map
// under a mutex that Transact holds, the transaction's writes kept aside
// and applied when its function returns nil, values copied in and out.
type memKV struct {
	mu   sync.Mutex
	vals map[string][]byte
}

func (s *memKV) Transact(ctx context.Context, fn func(e2e.Txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tx := &memKVTxn{s: s, writes: map[string][]byte{}}
	err := fn(tx)
	tx.done = true
	if err != nil {
		return err
	}
	if s.vals == nil {
		s.vals = map[string][]byte{}
	}
	for k, v := range tx.writes {
		if v == nil {
			delete(s.vals, k)
		} else {
			s.vals[k] = v
		}
	}
	return nil
}

// keys returns the committed keys under prefix, sorted.
func (s *memKV) keys(prefix string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.vals {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// memKVTxn is a memKV transaction; writes[k] is nil for a delete.
type memKVTxn struct {
	s      *memKV
	writes map[string][]byte
	done   bool
}

var errMemKVDone = errors.New("memKV: transaction used after it ended")

func (t *memKVTxn) Get(key string) ([]byte, error) {
	if t.done {
		return nil, errMemKVDone
	}
	v, ok := t.writes[key]
	if !ok {
		v = t.s.vals[key]
	}
	if v == nil {
		return nil, nil
	}
	return bytes.Clone(v), nil
}

func (t *memKVTxn) Put(key string, value []byte) error {
	if t.done {
		return errMemKVDone
	}
	t.writes[key] = append([]byte{}, value...)
	return nil
}

func (t *memKVTxn) Delete(key string) error {
	if t.done {
		return errMemKVDone
	}
	t.writes[key] = nil
	return nil
}

func (t *memKVTxn) List(prefix string) ([]string, error) {
	if t.done {
		return nil, errMemKVDone
	}
	all := maps.Clone(t.s.vals)
	if all == nil {
		all = map[string][]byte{}
	}
	maps.Copy(all, t.writes)
	var out []string
	for k, v := range all {
		if v != nil && strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	return out, nil
}

// registerInMemory makes a new account's first device on a memKV.
func registerInMemory(t *testing.T, r *testRelay) (*device, *memKV) {
	t.Helper()
	kv := &memKV{}
	m, err := RegisterStorage(ctxT(t), kv, &r.cfg, "memory")
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return &device{Messenger: m, rec: newRecorder()}, kv
}

// TestInMemoryStorage: two accounts whose devices keep everything in an
// app's own store (a KV, here in memory) exchange messages both ways,
// link a second device onto another such store, and send to a group;
// the state is all in the stores, under the keys KV documents, and a
// Messenger opened again on a store carries on.
func TestInMemoryStorage(t *testing.T) {
	r := newRelay(t)
	ctx := ctxT(t)
	alice, aliceKV := registerInMemory(t, r)
	bob, bobKV := registerInMemory(t, r)
	alice.run(t)
	bob.run(t)
	if _, err := alice.Send(ctx, bob.AccountID(), &Content{Text: "hello from memory"}); err != nil {
		t.Fatal(err)
	}
	nextMessage(t, bob.rec, "hello from memory")
	if _, err := bob.Send(ctx, alice.AccountID(), &Content{Text: "memory here too"}); err != nil {
		t.Fatal(err)
	}
	nextMessage(t, alice.rec, "memory here too")

	// Alice links a second device, which lives in a store of its own.
	alice2KV := &memKV{}
	l, err := StartLinkStorage(ctx, alice2KV, &r.cfg, "tablet")
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.ApproveLink(ctx, l.URI); err != nil {
		t.Fatal(err)
	}
	m2, err := l.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m2.Close() })
	if !bytes.Equal(m2.AccountID(), alice.AccountID()) || m2.DeviceID() < 2 {
		t.Fatalf("linked as %x/%d", m2.AccountID(), m2.DeviceID())
	}
	alice2 := &device{Messenger: m2, rec: newRecorder()}
	alice2.run(t)
	if _, err := StartLinkStorage(ctx, alice2KV, &r.cfg, "again"); !errors.Is(err, e2e.ErrExists) {
		t.Fatalf("a second link onto a store with a device: %v", err)
	}

	gid, err := alice.CreateGroup(ctx, "memories", bob.AccountID())
	if err != nil {
		t.Fatal(err)
	}
	if g := next[*GroupChange](t, bob.rec); g.Kind != GroupJoined || !bytes.Equal(g.GroupID, gid) {
		t.Fatalf("bob got %+v", g)
	}
	res, err := alice.SendGroup(ctx, gid, &Content{Text: "group from memory"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Devices < 1 {
		t.Fatalf("group send %+v", res)
	}
	if m := nextMessage(t, bob.rec, "group from memory"); !bytes.Equal(m.GroupID, gid) {
		t.Fatalf("bob got %+v", m)
	}
	if m := nextMessage(t, alice2.rec, "group from memory"); !m.FromSelf || !bytes.Equal(m.GroupID, gid) {
		t.Fatalf("alice's second device got %+v", m)
	}
	if _, err := bob.SendGroup(ctx, gid, &Content{Text: "group reply"}); err != nil {
		t.Fatal(err)
	}
	nextMessage(t, alice.rec, "group reply")
	nextMessage(t, alice2.rec, "group reply")

	// Everything lives in the stores: e2e's keys at the top, the
	// messenger's records under messenger/.
	for name, kv := range map[string]*memKV{"alice": aliceKV, "bob": bobKV} {
		for _, prefix := range []string{"device.json", "sessions/", "signed/", "prekeys/", "kemprekeys/", "identities/", "groups/", "messenger/groups/"} {
			if len(kv.keys(prefix)) == 0 {
				t.Errorf("%s's store has nothing under %q: %q", name, prefix, kv.keys(""))
			}
		}
	}
	// A Messenger opened again on Bob's store (the app restarted) goes on
	// where the first left off.
	bob.Close()
	again, err := OpenStorage(bobKV, &r.cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { again.Close() })
	if !bytes.Equal(again.AccountID(), bob.AccountID()) {
		t.Fatal("reopened as another account")
	}
	if _, err := again.SendGroup(ctx, gid, &Content{Text: "after a restart"}); err != nil {
		t.Fatal(err)
	}
	nextMessage(t, alice.rec, "after a restart")
}

// TestDirectoryIsAKV: a directory made by Register (DirStore) opened as
// a KV (e2e.NewDirStorage) is the same device with the same records, so
// the file layout is one implementation of KV, not a second format.
func TestDirectoryIsAKV(t *testing.T) {
	r := newRelay(t)
	alice := register(t, r)
	if err := alice.store.Put("groups/abc", []byte("state")); err != nil {
		t.Fatal(err)
	}
	kvs, err := OpenKV(e2e.NewDirStorage(alice.dir))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(kvs.AccountID(), alice.AccountID()) || kvs.DeviceID() != 1 {
		t.Fatalf("opened as %x/%d", kvs.AccountID(), kvs.DeviceID())
	}
	if b, err := kvs.Get("groups/abc"); err != nil || string(b) != "state" {
		t.Fatalf("record through the KV: %q, %v", b, err)
	}
	if keys, err := kvs.List("groups/"); err != nil || !slices.Contains(keys, "groups/abc") {
		t.Fatalf("list through the KV: %q, %v", keys, err)
	}
	if err := kvs.Put("groups/def", []byte("more")); err != nil {
		t.Fatal(err)
	}
	if b, err := alice.store.Get("groups/def"); err != nil || string(b) != "more" {
		t.Fatalf("record written through the KV, read from the directory: %q, %v", b, err)
	}
	if _, err := OpenKV(&memKV{}); !errors.Is(err, ErrNoDevice) {
		t.Fatalf("empty store: %v", err)
	}
}

// TestRegisterStorageUndone: a registration the relay never took (here,
// a relay that is not the one the config pins) leaves the store without
// a device, so it can be used again.
func TestRegisterStorageUndone(t *testing.T) {
	r := newRelay(t)
	cfg := r.cfg
	cfg.Fingerprint = strings.Repeat("00", 32)
	kv := &memKV{}
	if _, err := RegisterStorage(ctxT(t), kv, &cfg, ""); err == nil {
		t.Fatal("registered with a relay of another fingerprint")
	}
	if keys := kv.keys(""); len(keys) != 0 {
		t.Fatalf("the store keeps %q", keys)
	}
	m, err := RegisterStorage(ctxT(t), kv, &r.cfg, "")
	if err != nil {
		t.Fatalf("register again: %v", err)
	}
	m.Close()
}
