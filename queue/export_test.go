package queue

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// SeedKey is the i-th key SeedDedup stores: spread over the key space as
// senders' account ids are.
func SeedKey(i int) []byte {
	return binary.BigEndian.AppendUint64([]byte("seed|"), uint64(i)*0x9e3779b97f4a7c15)
}

// SeedDedup stores n dedup records (SeedKey(0) to SeedKey(n-1)) stamped t and
// compacts the database, so that they sit in the bottom level, where most
// of a long-running relay's records are.
func (s *Store) SeedDedup(n int, t time.Time) error {
	b := s.db.NewBatch()
	for i := range n {
		k := hashDedup(SeedKey(i)) // as Append stores it
		_ = b.Set(dedupKey(k), encodeTime(t), nil)
		_ = b.Set(dedupTimeKey(t, k), nil, nil)
		if b.Len() > 4<<20 {
			if err := b.Commit(pebble.NoSync); err != nil {
				return err
			}
			b = s.db.NewBatch()
		}
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return err
	}
	if err := s.db.Flush(); err != nil {
		return err
	}
	if err := s.db.Compact(context.Background(), []byte("q/"), []byte("q0"), true); err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	return nil
}

// LookupDedup is the dedup lookup of an Append: the time key was stored,
// or zero.
func (s *Store) LookupDedup(key []byte) (time.Time, error) {
	release, prior, err := s.claimDedup(context.Background(), hashDedup(key))
	if release != nil {
		release()
	}
	return prior, err
}

// PutLegacy stores a message in the value layout written before sender
// shares (time || body, no sender), as an upgraded relay finds it.
func PutLegacy(db *pebble.DB, a Address, seq uint64, t time.Time, body []byte) error {
	return db.Set(msgKey(a, seq), append(encodeTime(t), body...), pebble.Sync)
}

// SetRangeDeletes turns range tombstones for acked runs on or off (for
// benchmarks) and returns the previous setting.
func SetRangeDeletes(on bool) bool {
	old := rangeDeletes
	rangeDeletes = on
	return old
}
