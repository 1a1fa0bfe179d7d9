package e2e_test

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
)

// onMemory is set while the tests run a second time, on memStorage
// instead of directories.
var onMemory bool

// TestMain runs every test twice: on the directory storage (Create,
// Open), then on an in-memory Storage (CreateIn, OpenStorage).
func TestMain(m *testing.M) {
	code := m.Run()
	if f := flag.Lookup("test.fuzz"); f != nil && f.Value.String() != "" {
		os.Exit(code) // fuzzing runs once
	}
	if f := flag.Lookup("test.list"); f != nil && f.Value.String() != "" {
		os.Exit(code)
	}
	onMemory = true
	if f := flag.Lookup("test.bench"); testing.Verbose() || f != nil && f.Value.String() != "" {
		fmt.Println("=== the tests again, on in-memory storage")
	}
	if c := m.Run(); code == 0 {
		code = c
	}
	os.Exit(code)
}

// memStorage is an e2e.Storage in memory: a map under a mutex that
// Transact holds, with the transaction's writes kept aside and applied
// when its function returns nil. Values are copied in and out, as a
// database would.
type memStorage struct {
	mu   sync.Mutex
	vals map[string][]byte
}

func (s *memStorage) Transact(ctx context.Context, fn func(e2e.Txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tx := &memTxn{s: s, writes: map[string][]byte{}}
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

// memTxn is a memStorage transaction; writes[k] is nil for a delete.
type memTxn struct {
	s      *memStorage
	writes map[string][]byte
	done   bool
}

var errMemTxnDone = errors.New("memStorage: transaction used after it ended")

func (t *memTxn) Get(key string) ([]byte, error) {
	if t.done {
		return nil, errMemTxnDone
	}
	v, ok := t.writes[key]
	if !ok {
		v = t.s.vals[key]
	}
	if v == nil {
		return nil, nil
	}
	return append([]byte{}, v...), nil
}

func (t *memTxn) Put(key string, value []byte) error {
	if t.done {
		return errMemTxnDone
	}
	t.writes[key] = append([]byte{}, value...)
	return nil
}

func (t *memTxn) Delete(key string) error {
	if t.done {
		return errMemTxnDone
	}
	t.writes[key] = nil
	return nil
}

func (t *memTxn) List(prefix string) ([]string, error) {
	if t.done {
		return nil, errMemTxnDone
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

// createDevice makes a device with n one-time prekeys in a new storage
// of the run's kind.
func createDevice(tb testing.TB, n int) (*e2e.Device, *client.Registration) {
	tb.Helper()
	var (
		dev *e2e.Device
		reg *client.Registration
		err error
	)
	if onMemory {
		dev, reg, err = e2e.CreateIn(&memStorage{}, n)
	} else {
		dev, reg, err = e2e.Create(filepath.Join(tb.TempDir(), "state"), n)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return dev, reg
}

// createLinked is createDevice for a device linked with p.
func createLinked(tb testing.TB, p *e2e.Provisioning, n int) (*e2e.Device, *client.Registration) {
	tb.Helper()
	var (
		dev *e2e.Device
		reg *client.Registration
		err error
	)
	if onMemory {
		dev, reg, err = e2e.CreateLinkedIn(&memStorage{}, p, n)
	} else {
		dev, reg, err = e2e.CreateLinked(filepath.Join(tb.TempDir(), "state"), p, n)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return dev, reg
}

// reopen opens dev's state again, as another process would.
func reopen(tb testing.TB, dev *e2e.Device) *e2e.Device {
	tb.Helper()
	var (
		again *e2e.Device
		err   error
	)
	if onMemory {
		again, err = e2e.OpenStorage(dev.Storage())
	} else {
		again, err = e2e.Open(dev.Dir())
	}
	if err != nil {
		tb.Fatal(err)
	}
	return again
}

// stored returns the value under key in dev's state, nil if none: on a
// directory, the file key names, so the tests check the layout too.
func stored(tb testing.TB, dev *e2e.Device, key string) []byte {
	tb.Helper()
	if !onMemory {
		b, err := os.ReadFile(filepath.Join(dev.Dir(), filepath.FromSlash(key)))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
	var b []byte
	if err := dev.Storage().Transact(context.Background(), func(tx e2e.Txn) (err error) {
		b, err = tx.Get(key)
		return err
	}); err != nil {
		tb.Fatal(err)
	}
	return b
}

// store replaces the value under key in dev's state (a file on a
// directory), behind the Device's back.
func store(tb testing.TB, dev *e2e.Device, key string, value []byte) {
	tb.Helper()
	if !onMemory {
		if err := os.WriteFile(filepath.Join(dev.Dir(), filepath.FromSlash(key)), value, 0o600); err != nil {
			tb.Fatal(err)
		}
		return
	}
	if err := dev.Storage().Transact(context.Background(), func(tx e2e.Txn) error {
		return tx.Put(key, value)
	}); err != nil {
		tb.Fatal(err)
	}
}

// onlyOnDirectory skips a test of the directory's files on the in-memory
// run.
func onlyOnDirectory(t *testing.T) {
	t.Helper()
	if onMemory {
		t.Skip("checks the directory storage's files")
	}
}

// addressOf is p's account id in hex, as storage keys name it.
func addressOf(p *party) string { return hex.EncodeToString(p.acct) }
