package queue_test

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pigeonhole/pigeonhole/queue"
)

// BenchmarkDedupLookup is the idempotency lookup every send makes, against
// 500,000 remembered keys compacted to the bottom level: a new key (the
// usual case) and a repeated one.
func BenchmarkDedupLookup(b *testing.B) {
	s := openStore(b, queue.Config{})
	now := time.Now()
	if err := s.SeedDedup(500_000, now); err != nil {
		b.Fatal(err)
	}
	b.Run("new", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			k := binary.BigEndian.AppendUint64([]byte("seed|"), rand.Uint64())
			if t, err := s.LookupDedup(k); err != nil || !t.IsZero() {
				b.Fatal(t, err)
			}
		}
	})
	b.Run("repeat", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			k := queue.SeedKey(i % 500_000)
			if t, err := s.LookupDedup(k); err != nil || t.IsZero() {
				b.Fatal(t, err)
			}
		}
	})
}

// TestDedupInBottomLevel finds keys that compaction moved to the bottom
// level, whose bloom filters a plain point lookup would not consult.
func TestDedupInBottomLevel(t *testing.T) {
	s := openStore(t, queue.Config{})
	now := time.Now()
	if err := s.SeedDedup(10_000, now); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 4321, 9999} {
		res, err := s.Append(ctx(), queue.SeedKey(i), []queue.Message{{To: addr(1, 1), Body: []byte("x")}})
		if err != nil || !res.Duplicate || res.Time.UnixMilli() != now.UnixMilli() {
			t.Fatalf("seeded key %d: %+v, %v; want a duplicate from %v", i, res, err, now)
		}
	}
	res, err := s.Append(ctx(), queue.SeedKey(10_000), []queue.Message{{To: addr(1, 1), Body: []byte("x")}})
	if err != nil || res.Duplicate {
		t.Fatalf("new key: %+v, %v", res, err)
	}
	if n, _, _ := s.Depth(addr(1, 1)); n != 1 {
		t.Fatalf("queue holds %d, want the one new message", n)
	}
}
