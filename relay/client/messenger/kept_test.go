package messenger

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
)

// TestRestartKeepsDecryptedMessage: the app's handler fails on a message
// and the app then ends (the event held in memory goes with it). The
// envelope is still queued, but its ratchet step is taken: the device
// opened again gets the message from the plaintext e2e kept, and once it
// is taken nothing is kept any more.
func TestRestartKeepsDecryptedMessage(t *testing.T) {
	r := newRelay(t)
	alice, bob := register(t, r), register(t, r)
	ctx := ctxT(t)
	bob.rec.fail = func(m *Message) error {
		return errors.New("the app's database is locked")
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- bob.Run(runCtx, bob.rec) }()
	if _, err := alice.Send(ctx, bob.AccountID(), &Content{Text: "survives a restart"}); err != nil {
		t.Fatal(err)
	}
	next[error](t, bob.rec)
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := keptFiles(t, bob.dir); n != 1 {
		t.Fatalf("%d plaintexts kept while the message is not taken, want 1", n)
	}
	bob.Close()

	again, err := OpenStore(mustOpenDir(t, bob.dir), &r.cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	rec := newRecorder()
	if err := again.RunUntilDrained(ctx, rec); err != nil {
		t.Fatal(err)
	}
	nextMessage(t, rec, "survives a restart")
	if n := keptFiles(t, bob.dir); n != 0 {
		t.Fatalf("%d plaintexts kept after the message was taken", n)
	}
}

// keptFiles counts the plaintexts e2e keeps in a device directory.
func keptFiles(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "kept"))
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// unreadableGroupsKV is a memKV whose reads of the messenger's group
// records fail while fail is set, as a database that cannot be read
// would; the first such failure closes failed.
type unreadableGroupsKV struct {
	*memKV
	fail   atomic.Bool
	once   sync.Once
	failed chan struct{}
}

func (f *unreadableGroupsKV) Transact(ctx context.Context, fn func(e2e.Txn) error) error {
	return f.memKV.Transact(ctx, func(tx e2e.Txn) error { return fn(&unreadableGroupsTxn{tx, f}) })
}

type unreadableGroupsTxn struct {
	e2e.Txn
	kv *unreadableGroupsKV
}

func (t *unreadableGroupsTxn) Get(key string) ([]byte, error) {
	if t.kv.fail.Load() && strings.HasPrefix(key, recordsPrefix+"groups/") {
		t.kv.once.Do(func() { close(t.kv.failed) })
		return nil, errDiskFull
	}
	return t.Txn.Get(key)
}

// TestGroupRecordFailureKeepsMessage: a group message that decrypted,
// but whose group record could not be read to check the sender, is not
// acked; it is shown once the store reads again (before, it was acked
// and lost: the ratchet step was taken and nothing kept).
func TestGroupRecordFailureKeepsMessage(t *testing.T) {
	r := newRelay(t)
	ctx := ctxT(t)
	alice, _ := registerInMemory(t, r)
	kv := &unreadableGroupsKV{memKV: &memKV{}, failed: make(chan struct{})}
	m, err := RegisterStorage(ctx, kv, &r.cfg, "flaky disk")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	bob := &device{Messenger: m, rec: newRecorder()}
	bob.run(t)
	gid, err := alice.CreateGroup(ctx, "walkers", bob.AccountID())
	if err != nil {
		t.Fatal(err)
	}
	if g := next[*GroupChange](t, bob.rec); g.Kind != GroupJoined {
		t.Fatalf("group change %+v", g)
	}
	kv.fail.Store(true)
	if _, err := alice.SendGroup(ctx, gid, &Content{Text: "kept through an unreadable record"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-kv.failed:
	case <-time.After(patience):
		t.Fatal("bob never read the group record")
	}
	kv.fail.Store(false)
	if got := nextMessage(t, bob.rec, "kept through an unreadable record"); string(got.GroupID) != string(gid) {
		t.Fatalf("group %x", got.GroupID)
	}
}
