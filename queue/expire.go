package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Run expires old messages and dedup keys every Config.ExpireInterval,
// and scrubs the database every Config.ScrubInterval, until ctx is done.
// It returns nil when ctx ends.
func (s *Store) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.ExpireInterval)
	defer t.Stop()
	scrub := time.NewTicker(s.cfg.ScrubInterval)
	defer scrub.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-scrub.C:
			if err := s.Scrub(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("scrub the database", "err", err)
			}
		case <-t.C:
			n, err := s.Expire(ctx, s.cfg.Now())
			if err != nil && ctx.Err() == nil {
				s.log.Error("expire queues", "err", err)
			} else if n > 0 {
				s.log.Info("expired undelivered messages", "count", n)
			}
		}
	}
}

// Expire deletes messages older than the lifetime and dedup keys older
// than the dedup window, as of now, and returns how many messages it
// deleted. Messages of one device are appended in time order, so it only
// looks at the head of each queue.
func (s *Store) Expire(ctx context.Context, now time.Time) (int, error) {
	if err := s.expireDedup(ctx, now.Add(-s.cfg.DedupWindow)); err != nil {
		return 0, err
	}
	n, err := s.expireMessages(ctx, now.Add(-s.cfg.Lifetime))
	s.evictIdle()
	return n, err
}

func (s *Store) expireMessages(ctx context.Context, cutoff time.Time) (int, error) {
	p := []byte("q/m/")
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return 0, fmt.Errorf("queue: %w", err)
	}
	defer it.Close()
	total := 0
	for ok := it.First(); ok; {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		a, _, valid := parseMsgKey(it.Key())
		if !valid {
			ok = it.Next()
			continue
		}
		var old []uint64
		for ; ok; ok = it.Next() {
			b, seq, _ := parseMsgKey(it.Key())
			v, valid := parseValue(it.Value())
			if b != a || !valid || !v.time.Before(cutoff) {
				break
			}
			old = append(old, seq)
		}
		if len(old) > 0 {
			n, err := s.remove(a, old, pebble.NoSync)
			if err != nil {
				return total, err
			}
			total += n
		}
		ok = it.SeekGE(prefixEnd(msgPrefix(a)))
	}
	return total, it.Error()
}

func (s *Store) expireDedup(ctx context.Context, cutoff time.Time) error {
	lo := []byte("q/t/")
	hi := dedupTimeKey(cutoff, nil)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	b := s.db.NewBatch()
	defer b.Close()
	// Each key is claimed like an Append claims it, so an append taking
	// an expired key over cannot have its new record deleted here.
	var claimed []chan struct{}
	var claimedKeys []string
	defer func() {
		s.dedupMu.Lock()
		for _, k := range claimedKeys {
			delete(s.inflight, k)
		}
		s.dedupMu.Unlock()
		for _, ch := range claimed {
			close(ch)
		}
	}()
	for ok := it.First(); ok; ok = it.Next() {
		if err := ctx.Err(); err != nil {
			it.Close()
			return err
		}
		k := it.Key()
		key := k[len(lo)+timeSize:]
		s.dedupMu.Lock()
		_, busy := s.inflight[string(key)]
		if !busy {
			ch := make(chan struct{})
			s.inflight[string(key)] = ch
			claimed = append(claimed, ch)
			claimedKeys = append(claimedKeys, string(key))
		}
		s.dedupMu.Unlock()
		if busy {
			continue // being appended now; the next run looks again
		}
		_ = b.Delete(append([]byte(nil), k...), nil)
		// The dedup record may have been taken over by a later append
		// (after the window); only delete it if it is old too.
		v, closer, err := s.db.Get(dedupKey(key))
		if errors.Is(err, pebble.ErrNotFound) {
			continue
		}
		if err != nil {
			it.Close()
			return fmt.Errorf("queue: %w", err)
		}
		if len(v) != timeSize || decodeTime(v).Before(cutoff) {
			_ = b.Delete(dedupKey(key), nil)
		}
		closer.Close()
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("queue: expire dedup keys: %w", err)
	}
	if b.Empty() {
		return nil
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("queue: expire dedup keys: %w", err)
	}
	return nil
}

// DeleteDevice deletes a device's whole queue and its high-water mark
// durably, for a removed device: nothing of it stays in the database. A
// removed device's id is never given to another device (keys.Store), so
// its seqs need no remembering; while the process runs, a late append
// still gets a seq after every old one.
func (s *Store) DeleteDevice(ctx context.Context, a Address) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	st, err := s.lockState(a)
	if err != nil {
		return err
	}
	defer st.mu.Unlock()
	p := msgPrefix(a)
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.DeleteRange(p, prefixEnd(p), nil)
	_ = b.Delete(hwKey(a), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("queue: delete device: %w", err)
	}
	// Appends in progress still count until they settle.
	s.stored.Add(-int64(st.count - len(st.pending)))
	st.count, st.bytes = len(st.pending), 0
	clear(st.senders)
	st.wake()
	return nil
}
