package queue

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/cockroachdb/pebble/v2"
)

// Read returns up to maxCount messages of a device with seq greater than
// after, in seq order, stopping before maxBytes of bodies (but always
// returning at least one message if there is one). Expired messages are
// skipped.
func (s *Store) Read(ctx context.Context, a Address, after uint64, maxCount, maxBytes int) ([]Item, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if maxCount <= 0 {
		return nil, nil
	}
	st, err := s.lockState(a)
	if err != nil {
		return nil, err
	}
	vis := st.visible()
	st.mu.Unlock()
	if vis <= after {
		return nil, nil
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: msgKey(a, after+1), UpperBound: msgKey(a, vis+1)})
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	cutoff := s.cfg.Now().Add(-s.cfg.Lifetime)
	var (
		out   []Item
		total int
	)
	for ok := it.First(); ok && len(out) < maxCount; ok = it.Next() {
		v, ok := parseValue(it.Value())
		if !ok {
			continue
		}
		t := v.time
		if t.Before(cutoff) {
			continue
		}
		body := v.body
		if len(out) > 0 && total+len(body) > maxBytes {
			break
		}
		total += len(body)
		_, seq, _ := parseMsgKey(it.Key())
		out = append(out, Item{Seq: seq, Time: t, Body: append([]byte(nil), body...)})
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("queue: read: %w", err)
	}
	return out, nil
}

// Ack deletes the named messages of a device and returns how many it
// deleted; unknown seqs are ignored. The deletion is not synced: a crash
// soon after may bring a message back (delivery is at-least-once). Call
// Flush to make acks durable.
func (s *Store) Ack(ctx context.Context, a Address, seqs []uint64) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if len(seqs) == 0 {
		return 0, nil
	}
	// Sorted and without repeats: a repeated seq must not be counted
	// twice against the quota.
	return s.remove(a, slices.Compact(slices.Sorted(slices.Values(seqs))), pebble.NoSync)
}

// remove deletes the given seqs (ascending, no repeats) of one device:
// one iterator, one seek per run of consecutive seqs (acks usually name
// runs: a session's oldest envelopes, in order), then a walk over the
// messages the run holds, all in one batch.
func (s *Store) remove(a Address, seqs []uint64, opts *pebble.WriteOptions) (int, error) {
	st, err := s.lockState(a)
	if err != nil {
		return 0, err
	}
	defer st.mu.Unlock()
	upper := prefixEnd(msgPrefix(a))
	if last := seqs[len(seqs)-1]; last != math.MaxUint64 {
		upper = msgKey(a, last+1)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: msgKey(a, seqs[0]), UpperBound: upper})
	if err != nil {
		return 0, fmt.Errorf("queue: %w", err)
	}
	b := s.db.NewBatch()
	defer b.Close()
	n, freed := 0, int64(0)
	var gone []removed
	for i := 0; i < len(seqs); {
		j := i + 1
		for j < len(seqs) && seqs[j] == seqs[j-1]+1 {
			j++
		}
		first, last := seqs[i], seqs[j-1]
		i = j
		inRun := 0
		for valid := it.SeekGE(msgKey(a, first)); valid; valid = it.Next() {
			if _, got, _ := parseMsgKey(it.Key()); got > last {
				break
			}
			if !rangeDeletes {
				_ = b.Delete(it.Key(), nil)
			}
			inRun++
			v, _ := parseValue(it.Value())
			freed += int64(len(v.body))
			if v.named {
				gone = append(gone, removed{v.sender, int64(len(v.body))})
			}
		}
		n += inRun
		if rangeDeletes && inRun > 0 {
			end := prefixEnd(msgPrefix(a))
			if last != math.MaxUint64 {
				end = msgKey(a, last+1)
			}
			_ = b.DeleteRange(msgKey(a, first), end, nil)
		}
	}
	if err := it.Close(); err != nil {
		return 0, fmt.Errorf("queue: ack: %w", err)
	}
	if n == 0 {
		return 0, nil
	}
	_ = b.Set(hwKey(a), binary.BigEndian.AppendUint64(nil, st.next-1), nil)
	if err := b.Commit(opts); err != nil {
		return 0, fmt.Errorf("queue: delete: %w", err)
	}
	st.count -= n
	st.bytes -= freed
	for _, g := range gone {
		st.senders = addShare(st.senders, g.sender, -1, -g.bytes)
	}
	s.stored.Add(-int64(n))
	return n, nil
}

// rangeDeletes makes remove delete each run with one range tombstone
// instead of a point tombstone per message. It is off: measured, range
// tombstones made reads slower (README, "Performance"); the benchmarks
// turn it on to compare.
var rangeDeletes = false

// removed is a deleted message's sender and size.
type removed struct {
	sender [16]byte
	bytes  int64
}

// Flush makes every earlier write, acks included, durable.
func (s *Store) Flush(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.db.LogData(nil, pebble.Sync); err != nil {
		return fmt.Errorf("queue: flush: %w", err)
	}
	return nil
}

// Watch returns a channel that receives a value whenever messages for a
// become readable, and a function that stops the watch. A value may be
// pending already when Watch returns; readers read after each wake-up
// until Read returns nothing.
func (s *Store) Watch(a Address) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	cancel, err := s.watch(a, func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	})
	if err != nil {
		// The state could not be loaded; wake once so the reader's Read
		// reports the error.
		ch <- struct{}{}
	}
	return ch, cancel
}

// WatchFunc is Watch without a channel (and so without a goroutine to
// wait on one): f is called whenever messages for a become readable,
// until the returned function stops the watch. f runs under the queue's
// lock for a: it must return at once and must not call the Store. It is
// not called for what is readable already; read once after WatchFunc
// returns. If a's state cannot be loaded, f is never called, and that
// read reports the error.
func (s *Store) WatchFunc(a Address, f func()) (cancel func()) {
	cancel, _ = s.watch(a, f)
	return cancel
}

func (s *Store) watch(a Address, f func()) (func(), error) {
	st, err := s.lockState(a)
	if err != nil {
		return func() {}, err
	}
	w := &waiter{f: f}
	st.waiters[w] = struct{}{}
	st.mu.Unlock()
	return func() {
		st.mu.Lock()
		delete(st.waiters, w)
		st.mu.Unlock()
	}, nil
}

// Depth returns how many messages and body bytes a device has queued,
// counting appends in progress.
func (s *Store) Depth(a Address) (int, int64, error) {
	st, err := s.lockState(a)
	if err != nil {
		return 0, 0, err
	}
	defer st.mu.Unlock()
	return st.count, st.bytes, nil
}
