package messenger

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
)

// failingKV is a memKV whose commits that store a pairwise session fail
// while fail is set, as a full disk would make them: the first such
// failure closes failed.
type failingKV struct {
	*memKV
	fail   atomic.Bool
	once   sync.Once
	failed chan struct{}
}

func (f *failingKV) Transact(ctx context.Context, fn func(e2e.Txn) error) error {
	return f.memKV.Transact(ctx, func(tx e2e.Txn) error {
		if err := fn(tx); err != nil {
			return err
		}
		if !f.fail.Load() {
			return nil
		}
		for k := range tx.(*memKVTxn).writes {
			if strings.HasPrefix(k, "sessions/") {
				f.once.Do(func() { close(f.failed) })
				return errDiskFull
			}
		}
		return nil
	})
}

// TestStoreFailureKeepsEnvelope: a message whose decryption cannot be
// stored (the app's database refuses the commit) is neither dropped nor
// acked; it is decrypted once the store works again. Acking it would
// lose it, since nothing was kept of it.
func TestStoreFailureKeepsEnvelope(t *testing.T) {
	r := newRelay(t)
	ctx := ctxT(t)
	alice, _ := registerInMemory(t, r)
	kv := &failingKV{memKV: &memKV{}, failed: make(chan struct{})}
	m, err := RegisterStorage(ctx, kv, &r.cfg, "full disk")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	bob := &device{Messenger: m, rec: newRecorder()}
	kv.fail.Store(true)
	bob.run(t)
	if _, err := alice.Send(ctx, bob.AccountID(), &Content{Text: "kept through a full disk"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-kv.failed:
	case <-time.After(patience):
		t.Fatal("bob's store was never asked to keep the session")
	}
	kv.fail.Store(false)
	got := nextMessage(t, bob.rec, "kept through a full disk")
	if !strings.EqualFold(string(got.From), string(alice.AccountID())) {
		t.Fatalf("from %x", got.From)
	}
	// Nothing was dropped on the way.
	for {
		select {
		case ev := <-bob.rec.events:
			if d, ok := ev.(*Dropped); ok {
				t.Fatalf("dropped: %+v", d)
			}
		default:
			return
		}
	}
}
