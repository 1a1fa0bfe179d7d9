package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// devState is the in-memory view of one device's queue: the next seq,
// which seqs are reserved but not yet committed, the quota usage, and who
// is waiting for news.
type devState struct {
	mu      sync.Mutex
	loaded  bool
	dead    bool      // evicted from Store.states; look it up again
	next    uint64    // next seq to assign
	pending []uint64  // reserved, not yet committed (ascending)
	count   int       // committed + pending messages
	bytes   int64     // committed + pending body bytes
	last    time.Time // time of the latest append
	waiters map[*waiter]struct{}

	// What each sending account has queued here: committed messages
	// (counted from the stored values at load, then kept up to date by
	// appends and removals) and reservations not yet settled. Accounts
	// with nothing queued have no entry.
	senders     map[[16]byte]share
	pendSenders map[[16]byte]share
}

// share is what one sender has in one device's queue.
type share struct {
	count int
	bytes int64
}

// share returns what sender has queued here, committed or pending.
func (st *devState) share(sender [16]byte) share {
	c, p := st.senders[sender], st.pendSenders[sender]
	return share{count: c.count + p.count, bytes: c.bytes + p.bytes}
}

// addShare adds n messages of size bytes (negative to take away) to
// sender's entry in m, which it returns (made if nil), and drops the
// entry when it comes to nothing.
func addShare(m map[[16]byte]share, sender [16]byte, n int, bytes int64) map[[16]byte]share {
	if m == nil {
		m = make(map[[16]byte]share)
	}
	sh := m[sender]
	sh.count += n
	sh.bytes += bytes
	if sh.count <= 0 {
		delete(m, sender)
		return m
	}
	sh.bytes = max(0, sh.bytes)
	m[sender] = sh
	return m
}

// visible is the highest seq below which everything is committed or
// abandoned. Readers never look past it.
func (st *devState) visible() uint64 {
	if len(st.pending) > 0 {
		return st.pending[0] - 1
	}
	return st.next - 1
}

func (st *devState) idle() bool {
	return st.count == 0 && len(st.pending) == 0 && len(st.waiters) == 0
}

// waiter is one WatchFunc's callback.
type waiter struct{ f func() }

// wake tells every waiter that something changed. The caller holds st.mu.
func (st *devState) wake() {
	for w := range st.waiters {
		w.f()
	}
}

func (st *devState) unreserve(seq uint64) {
	if i, ok := slices.BinarySearch(st.pending, seq); ok {
		st.pending = slices.Delete(st.pending, i, i+1)
	}
}

// lockState returns a's state, loaded and locked.
func (s *Store) lockState(a Address) (*devState, error) {
	for {
		s.mu.Lock()
		st, ok := s.states[a]
		if !ok {
			st = &devState{}
			s.states[a] = st
		}
		s.mu.Unlock()
		st.mu.Lock()
		if st.dead {
			st.mu.Unlock()
			continue
		}
		if !st.loaded {
			if err := s.load(a, st); err != nil {
				st.mu.Unlock()
				return nil, err
			}
		}
		return st, nil
	}
}

// load reads a device's quota usage and highest seq from Pebble.
func (s *Store) load(a Address, st *devState) error {
	var hw uint64
	v, closer, err := s.db.Get(hwKey(a))
	switch {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		return fmt.Errorf("queue: read high-water mark: %w", err)
	default:
		if len(v) == 8 {
			hw = binary.BigEndian.Uint64(v)
		}
		closer.Close()
	}
	p := msgPrefix(a)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	count, bytes := 0, int64(0)
	senders := make(map[[16]byte]share)
	for ok := it.First(); ok; ok = it.Next() {
		count++
		v, _ := parseValue(it.Value())
		bytes += int64(len(v.body))
		if v.named {
			senders = addShare(senders, v.sender, 1, int64(len(v.body)))
		}
	}
	if it.Last() {
		if _, seq, ok := parseMsgKey(it.Key()); ok && seq > hw {
			hw = seq
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("queue: scan queue: %w", err)
	}
	st.next, st.count, st.bytes, st.senders, st.loaded = hw+1, count, bytes, senders, true
	if st.waiters == nil {
		st.waiters = make(map[*waiter]struct{})
	}
	return nil
}

// evictIdle drops the state of devices with empty queues and no readers,
// so memory follows the number of active devices.
func (s *Store) evictIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for a, st := range s.states {
		if !st.mu.TryLock() {
			continue
		}
		if st.loaded && st.idle() {
			st.dead = true
			delete(s.states, a)
		}
		st.mu.Unlock()
	}
}
