package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Message is one ciphertext for one device.
type Message struct {
	To Address
	// Sender is the sending account. Its messages queued for one device
	// are bounded by Config.SenderMaxCount and SenderMaxBytes. (Messages
	// of senders the relay does not know share the zero Sender's share.)
	Sender [16]byte
	Body   []byte
}

// Item is a queued message as read back.
type Item struct {
	Seq  uint64
	Time time.Time // when it was appended
	Body []byte
}

// AppendResult is the outcome of an Append.
type AppendResult struct {
	// Time is when the messages were stored (for a duplicate, when the
	// first append was).
	Time time.Time
	// Duplicate is true when the dedup key was already stored: nothing
	// new was written.
	Duplicate bool
}

// Store is the set of per-device queues on a Pebble database. It is safe
// for concurrent use.
type Store struct {
	db  *pebble.DB
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	states map[Address]*devState

	dedupMu  sync.Mutex
	inflight map[string]chan struct{} // dedup keys being appended now

	stored atomic.Int64 // messages in all queues (Len)

	scrubMu    sync.Mutex // one Scrub at a time
	scrubbed   bool       // a Scrub has run
	scrubbedAt uint64     // WAL bytes written as of the last Scrub
}

// Open returns the queues on db. The caller keeps ownership of db.
func Open(db *pebble.DB, cfg Config, log *slog.Logger) (*Store, error) {
	if db == nil {
		return nil, errors.New("queue: nil database")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.setDefaults()
	s := &Store{
		db: db, cfg: cfg, log: log,
		states:   make(map[Address]*devState),
		inflight: make(map[string]chan struct{}),
	}
	n, err := s.countStored()
	if err != nil {
		return nil, err
	}
	s.stored.Store(n)
	return s, nil
}

// countStored counts the stored messages, once at Open; Len keeps the
// count from then on.
func (s *Store) countStored() (int64, error) {
	p := []byte("q/m/")
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return 0, fmt.Errorf("queue: count: %w", err)
	}
	var n int64
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	if err := it.Close(); err != nil {
		return 0, fmt.Errorf("queue: count: %w", err)
	}
	return n, nil
}

// Len is how many messages all the queues hold now (expired ones until
// the expiry pass deletes them).
func (s *Store) Len() int64 { return s.stored.Load() }

type reservation struct {
	st     *devState
	seq    uint64
	n      int64
	sender [16]byte
	time   time.Time // never before an earlier message of the device
}

// Append stores msgs atomically and durably (one synced Pebble batch): when
// it returns nil every message is on disk, and a reader of each recipient
// is woken. If dedupKey is not empty and was stored within the dedup
// window, nothing is written and the result says Duplicate. If any
// recipient queue is over its quota, nothing is written and the error is
// ErrQueueFull; if a message would put its sender over its share of the
// recipient device's queue, ErrSenderShare. A sender's share is counted from
// the messages themselves (each names its sender), so it is exactly what
// is queued, in the same batch, with no extra read.
func (s *Store) Append(ctx context.Context, dedup []byte, msgs []Message) (AppendResult, error) {
	if len(msgs) == 0 {
		return AppendResult{}, ErrEmpty
	}
	if len(dedup) > 0 {
		dedup = hashDedup(dedup) // stored, so neither sender nor message id is
		release, prior, err := s.claimDedup(ctx, dedup)
		if err != nil || !prior.IsZero() {
			return AppendResult{Time: prior, Duplicate: !prior.IsZero()}, err
		}
		defer release()
	}
	now := s.cfg.Now()
	res := make([]reservation, 0, len(msgs))
	for _, m := range msgs {
		r, err := s.reserve(m, now)
		if err != nil {
			s.settle(res, false)
			return AppendResult{}, err
		}
		res = append(res, r)
	}
	b := s.db.NewBatch()
	defer b.Close()
	stamp := encodeTime(now)
	for i, m := range msgs {
		_ = b.Set(msgKey(m.To, res[i].seq), encodeValue(res[i].time, m.Sender, m.Body), nil)
	}
	if len(dedup) > 0 {
		_ = b.Set(dedupKey(dedup), stamp, nil)
		_ = b.Set(dedupTimeKey(now, dedup), nil, nil)
	}
	err := b.Commit(pebble.Sync)
	s.settle(res, err == nil)
	if err != nil {
		return AppendResult{}, fmt.Errorf("queue: append: %w", err)
	}
	s.stored.Add(int64(len(msgs)))
	return AppendResult{Time: now}, nil
}

// reserve assigns m the next seq of its device and counts it against the
// quota.
func (s *Store) reserve(m Message, now time.Time) (reservation, error) {
	st, err := s.lockState(m.To)
	if err != nil {
		return reservation{}, err
	}
	defer st.mu.Unlock()
	n := int64(len(m.Body))
	if n > s.cfg.MaxBytes {
		return reservation{}, ErrTooLarge
	}
	if st.count+1 > s.cfg.MaxCount || st.bytes+n > s.cfg.MaxBytes {
		return reservation{}, ErrQueueFull
	}
	sh := st.share(m.Sender)
	if sh.count+1 > s.cfg.SenderMaxCount || sh.bytes+n > s.cfg.SenderMaxBytes {
		return reservation{}, ErrSenderShare
	}
	seq := st.next
	st.next++
	st.pending = append(st.pending, seq)
	st.count++
	st.bytes += n
	st.pendSenders = addShare(st.pendSenders, m.Sender, 1, n)
	// Expiry looks only at the head of a queue, so a device's message
	// times must not go backwards (concurrent appends, a clock step).
	if now.Before(st.last) {
		now = st.last
	}
	st.last = now
	return reservation{st: st, seq: seq, n: n, sender: m.Sender, time: now}, nil
}

// settle ends reservations: committed ones become visible and wake their
// readers; abandoned ones give their quota back.
func (s *Store) settle(res []reservation, committed bool) {
	for _, r := range res {
		r.st.mu.Lock()
		r.st.unreserve(r.seq)
		r.st.pendSenders = addShare(r.st.pendSenders, r.sender, -1, -r.n)
		if committed {
			r.st.senders = addShare(r.st.senders, r.sender, 1, r.n)
		} else {
			r.st.count = max(0, r.st.count-1)
			r.st.bytes = max(0, r.st.bytes-r.n)
		}
		// Wake readers either way: an abandoned seq can make later,
		// committed ones readable.
		r.st.wake()
		r.st.mu.Unlock()
	}
}

// claimDedup makes this caller the only one appending key. It returns the
// stored time if key was appended before.
func (s *Store) claimDedup(ctx context.Context, key []byte) (release func(), prior time.Time, err error) {
	k := string(key)
	var mine chan struct{}
	for mine == nil {
		s.dedupMu.Lock()
		ch, busy := s.inflight[k]
		if !busy {
			mine = make(chan struct{})
			s.inflight[k] = mine
		}
		s.dedupMu.Unlock()
		if busy {
			select {
			case <-ch:
			case <-ctx.Done():
				return nil, time.Time{}, ctx.Err()
			}
		}
	}
	release = func() {
		s.dedupMu.Lock()
		delete(s.inflight, k)
		s.dedupMu.Unlock()
		close(mine)
	}
	t, found, err := s.lookupDedup(key)
	switch {
	case err != nil:
		release()
		return nil, time.Time{}, err
	case !found:
		return release, time.Time{}, nil
	}
	if s.cfg.Now().Sub(t) >= s.cfg.DedupWindow {
		// Remembered but past the window (expiry has not run yet): this
		// append is new and takes the key over.
		return release, time.Time{}, nil
	}
	release()
	return nil, t, nil
}

// lookupDedup reads the time a dedup key was stored, if it is. Most keys
// are new, so the lookup goes through a prefix seek that consults every
// level's bloom filter: db.Get skips the bottom level's filters, where
// most records of a running relay sit, and read a data block for every
// new key (BenchmarkDedupLookup).
func (s *Store) lookupDedup(key []byte) (time.Time, bool, error) {
	k := dedupKey(key)
	it, err := s.db.NewIter(&pebble.IterOptions{UseL6Filters: true})
	if err != nil {
		return time.Time{}, false, fmt.Errorf("queue: read dedup key: %w", err)
	}
	var (
		t     time.Time
		found = it.SeekPrefixGE(k) && string(it.Key()) == string(k)
		bad   = found && len(it.Value()) != timeSize
	)
	if found && !bad {
		t = decodeTime(it.Value())
	}
	if err := it.Close(); err != nil {
		return time.Time{}, false, fmt.Errorf("queue: read dedup key: %w", err)
	}
	if bad {
		return time.Time{}, false, errors.New("queue: corrupt dedup record")
	}
	return t, found, nil
}
