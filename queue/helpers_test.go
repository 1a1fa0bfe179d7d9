package queue_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"

	"github.com/pigeonhole/pigeonhole/queue"
)

type silentPebble struct{}

func (silentPebble) Infof(string, ...any)         {}
func (silentPebble) Errorf(string, ...any)        {}
func (silentPebble) Fatalf(f string, args ...any) { panic(f) }

func openDB(t testing.TB, dir string) *pebble.DB {
	t.Helper()
	opts := &pebble.Options{FormatMajorVersion: pebble.FormatNewest, Logger: silentPebble{}}
	// As cmd/pigeonhole opens it: bloom filters and a 64 MiB block cache,
	// so the dedup lookup of a new key stays off the disk.
	opts.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
	cache := pebble.NewCache(64 << 20)
	defer cache.Unref()
	opts.Cache = cache
	queue.PebbleOptions(opts)
	db, err := pebble.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func openStore(t testing.TB, cfg queue.Config) *queue.Store {
	t.Helper()
	db := openDB(t, t.TempDir())
	t.Cleanup(func() { db.Close() })
	s, err := queue.Open(db, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func addr(b byte, dev uint32) queue.Address {
	var a queue.Address
	a.Account[0] = b
	a.Device = dev
	return a
}

func ctx() context.Context { return context.Background() }

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func bodies(items []queue.Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = string(it.Body)
	}
	return out
}
