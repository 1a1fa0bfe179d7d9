package jsqueue

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pigeonhole/pigeonhole/queue"
)

// Ack deletes the named messages of a device and returns how many it
// deleted; unknown seqs, and seqs of other devices, are ignored.
//
// Acks usually name the oldest messages a session was given, in order.
// Those go in one request: a purge of the device's subject below the last
// of them, which is exact because this Store read them from the start of
// the device's queue without a gap (see outstanding). Any other seq is
// deleted on its own, after a lookup of its subject if this Store did not
// deliver it; those requests run concurrently.
func (s *Store) Ack(ctx context.Context, a queue.Address, seqs []uint64) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	upTo, inPrefix, known, unknown := s.out.take(a, slices.Compact(slices.Sorted(slices.Values(seqs))))
	var deleted atomic.Int64
	if upTo != 0 {
		err := again(ctx, func() error {
			return s.stream.Purge(ctx, jetstream.WithPurgeSubject(devicePattern(a)), jetstream.WithPurgeSequence(upTo+1))
		})
		if err != nil {
			// They stay queued and come again: delivery is at least once.
			return 0, fmt.Errorf("jsqueue: ack: %w", err)
		}
		deleted.Add(int64(inPrefix))
	}
	var (
		wg    sync.WaitGroup
		sem   = make(chan struct{}, ackConcurrency)
		mu    sync.Mutex
		first error
	)
	one := func(seq uint64, lookup bool) {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			ok, err := s.ackOne(ctx, a, seq, lookup)
			if ok {
				deleted.Add(1)
			}
			if err != nil {
				mu.Lock()
				first = cmp.Or(first, err)
				mu.Unlock()
			}
		}()
	}
	for _, seq := range known {
		one(seq, false)
	}
	for _, seq := range unknown {
		one(seq, true)
	}
	wg.Wait()
	return int(deleted.Load()), first
}

// ackConcurrency bounds the delete requests one Ack has in flight.
const ackConcurrency = 32

// ackOne deletes one message. With lookup, it first checks that seq is
// a's: a client may name any number (a seq names one message forever,
// so the answer cannot change).
func (s *Store) ackOne(ctx context.Context, a queue.Address, seq uint64, lookup bool) (bool, error) {
	if lookup {
		m, err := s.leaderGet(ctx, seq, "")
		if errors.Is(err, errNotFound) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("jsqueue: ack: %w", err)
		}
		if !ofDevice(m.Subject, a) {
			return false, nil
		}
	}
	switch err := again(ctx, func() error { return s.stream.DeleteMsg(ctx, seq) }); {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("jsqueue: ack: %w", err)
	}
	return true, nil
}

// outstanding is what this Store delivered of one device and was not
// acked yet, in seq order. fromStart means the list began with a read
// from the start of the device's queue: then it holds every message of
// the device up to its last seq (reads return a device's messages in
// order and without gaps, and seqs only grow), so purging below an acked
// prefix deletes exactly that prefix.
type outstanding struct {
	fromStart bool
	seqs      []uint64
}

// outstandingSet is outstanding per device.
type outstandingSet struct {
	mu sync.Mutex
	m  map[queue.Address]*outstanding
}

// outstandingMax bounds one device's list; past it the device's acks are
// deleted one by one.
const outstandingMax = 1 << 14

// read records what a Read after seq after returned, for a device with
// a reader (a session) on this Store.
func (o *outstandingSet) read(a queue.Address, after uint64, items []queue.Item) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		o.m = make(map[queue.Address]*outstanding)
	}
	l := o.m[a]
	if l == nil || after == 0 {
		l = &outstanding{fromStart: after == 0}
		o.m[a] = l
	}
	var last uint64
	if n := len(l.seqs); n > 0 {
		last = l.seqs[n-1]
	}
	if after > last {
		// This read starts past what the list holds (another reader of
		// the device, or one the list was reset under): there may be a
		// gap, so no purges for this list any more.
		l.fromStart = false
	}
	for _, it := range items {
		if it.Seq > last {
			l.seqs = append(l.seqs, it.Seq)
			last = it.Seq
		}
	}
	if len(l.seqs) > outstandingMax {
		l.seqs, l.fromStart = nil, false
	}
}

// take removes acked (ascending, unique) from a's list. It returns the
// last seq of the acked prefix of a list that is fromStart (0: none) and
// how many that prefix holds; the other acked seqs in the list (known
// to be a's); and those not in it.
func (o *outstandingSet) take(a queue.Address, acked []uint64) (upTo uint64, inPrefix int, known, unknown []uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	l := o.m[a]
	if l == nil {
		return 0, 0, nil, acked
	}
	ack := make(map[uint64]bool, len(acked))
	for _, s := range acked {
		ack[s] = true
	}
	if l.fromStart {
		for inPrefix < len(l.seqs) && ack[l.seqs[inPrefix]] {
			delete(ack, l.seqs[inPrefix])
			inPrefix++
		}
		if inPrefix > 0 {
			upTo = l.seqs[inPrefix-1]
			l.seqs = l.seqs[inPrefix:]
		}
	}
	l.seqs = slices.DeleteFunc(l.seqs, func(s uint64) bool {
		if ack[s] {
			known = append(known, s)
			delete(ack, s)
			return true
		}
		return false
	})
	for _, s := range acked {
		if ack[s] {
			unknown = append(unknown, s)
		}
	}
	return upTo, inPrefix, known, unknown
}

// forget drops a's list, when its last reader stops.
func (o *outstandingSet) forget(a queue.Address) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.m, a)
}
