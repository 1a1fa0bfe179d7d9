package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Stats is the size of one device's queue as an operator sees it: how
// much waits and since when, never what.
type Stats struct {
	Address Address
	// Count and Bytes are the messages stored and their body bytes
	// (expired ones until the expiry pass deletes them).
	Count int
	Bytes int64
	// Oldest is when the oldest stored message arrived.
	Oldest time.Time
}

// QueueStats calls fn with the stats of every non-empty queue, in address
// order, until fn returns false. It scans a consistent snapshot of the
// stored messages (not appends still in progress), reading their headers
// only.
func (s *Store) QueueStats(ctx context.Context, fn func(Stats) bool) error {
	snap := s.db.NewSnapshot()
	defer snap.Close()
	p := []byte("q/m/")
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return fmt.Errorf("queue: stats: %w", err)
	}
	defer it.Close()
	var cur Stats
	for ok := it.First(); ok; ok = it.Next() {
		a, _, ok := parseMsgKey(it.Key())
		if !ok {
			continue
		}
		if a != cur.Address || cur.Count == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			if cur.Count > 0 && !fn(cur) {
				return nil
			}
			cur = Stats{Address: a}
		}
		v, ok := parseValue(it.Value())
		if !ok {
			continue
		}
		cur.Count++
		cur.Bytes += int64(len(v.body))
		if cur.Oldest.IsZero() || v.time.Before(cur.Oldest) {
			cur.Oldest = v.time
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("queue: stats: %w", err)
	}
	if cur.Count > 0 {
		fn(cur)
	}
	return nil
}
