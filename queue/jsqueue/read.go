package jsqueue

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pigeonhole/pigeonhole/queue"
)

// directGet is JetStream's batched direct-get request.
type directGet struct {
	Seq      uint64 `json:"seq"`
	NextFor  string `json:"next_by_subj"`
	Batch    int    `json:"batch"`
	MaxBytes int    `json:"max_bytes,omitempty"`
}

// Read returns up to maxCount messages of a device with seq greater than
// after, in seq order, stopping before maxBytes of bodies (but always
// returning at least one message if there is one). It is one request: a
// batched direct get, answered by any replica.
func (s *Store) Read(ctx context.Context, a queue.Address, after uint64, maxCount, maxBytes int) ([]queue.Item, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if maxCount <= 0 {
		return nil, nil
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var out []queue.Item
	err := again(ctx, func() (err error) {
		out, err = s.readOnce(ctx, a, after, maxCount, maxBytes)
		return err
	})
	if err != nil {
		return nil, err
	}
	// The replica that answered may not have the newest messages yet: if
	// a wake-up named a later seq than it returned, read the rest from
	// the leader.
	want := s.announced(a)
	last, total := after, 0
	for _, it := range out {
		last, total = it.Seq, total+len(it.Body)
	}
	for last < want && len(out) < maxCount {
		m, err := s.leaderGet(ctx, last+1, queueSubject(a))
		if errors.Is(err, errNotFound) {
			break
		}
		if err != nil {
			return nil, err
		}
		if len(out) > 0 && total+len(m.Data) > maxBytes {
			break
		}
		total += len(m.Data)
		out = append(out, queue.Item{Seq: m.Sequence, Time: m.Time, Body: m.Data})
		last = m.Sequence
	}
	s.delivered.add(a, out)
	return out, nil
}

// readOnce is one batched direct get.
func (s *Store) readOnce(ctx context.Context, a queue.Address, after uint64, maxCount, maxBytes int) ([]queue.Item, error) {
	req, _ := json.Marshal(directGet{Seq: after + 1, NextFor: queueSubject(a), Batch: maxCount, MaxBytes: maxBytes})
	// A small channel of our own: SubscribeSync would allocate one for
	// 65,536 messages on every read. The answer is at most maxCount
	// messages, one more past max_bytes, and the end marker.
	inbox := nats.NewInbox()
	replies := make(chan *nats.Msg, maxCount+2)
	sub, err := s.nc.ChanSubscribe(inbox, replies)
	if err != nil {
		return nil, fmt.Errorf("jsqueue: read: %w", err)
	}
	defer sub.Unsubscribe()
	if err := s.nc.PublishRequest("$JS.API.DIRECT.GET."+s.cfg.Stream, inbox, req); err != nil {
		return nil, fmt.Errorf("jsqueue: read: %w", err)
	}
	var (
		out   []queue.Item
		total int
		full  bool
	)
	for {
		var m *nats.Msg
		select {
		case m = <-replies:
		case <-ctx.Done():
			return nil, fmt.Errorf("jsqueue: read: %w", ctx.Err())
		}
		switch m.Header.Get("Status") {
		case "":
		case "404", "204": // nothing (more) to read
			return out, nil
		case "503":
			return nil, errNoLeader
		default:
			return nil, fmt.Errorf("jsqueue: read: status %s %s", m.Header.Get("Status"), m.Header.Get("Description"))
		}
		if full {
			continue // the server may send one past max_bytes; drain to EOB
		}
		seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("jsqueue: read: bad sequence header: %w", err)
		}
		t, err := time.Parse(time.RFC3339Nano, m.Header.Get(jetstream.TimeStampHeaer))
		if err != nil {
			return nil, fmt.Errorf("jsqueue: read: bad time header: %w", err)
		}
		if len(out) > 0 && total+len(m.Data) > maxBytes {
			full = true
			continue
		}
		total += len(m.Data)
		out = append(out, queue.Item{Seq: seq, Time: t, Body: m.Data})
		if len(out) == maxCount {
			full = true
		}
	}
}

// Ack deletes the named messages of a device and returns how many it
// deleted; unknown seqs, and seqs of other devices, are ignored. The
// deletes run concurrently, one request each.
func (s *Store) Ack(ctx context.Context, a queue.Address, seqs []uint64) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var (
		wg      sync.WaitGroup
		sem     = make(chan struct{}, ackConcurrency)
		deleted atomic.Int64
		mu      sync.Mutex
		first   error
	)
	for _, seq := range slices.Compact(slices.Sorted(slices.Values(seqs))) {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			ok, err := s.ackOne(ctx, a, seq)
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
	wg.Wait()
	return int(deleted.Load()), first
}

// ackConcurrency bounds the delete requests one Ack has in flight.
const ackConcurrency = 32

func (s *Store) ackOne(ctx context.Context, a queue.Address, seq uint64) (bool, error) {
	// The seq must be this device's: a client may name any number. A seq
	// this Store delivered is known; another is looked up (a seq names
	// one message forever, so the answer cannot change).
	if !s.delivered.take(seq, a) {
		m, err := s.leaderGet(ctx, seq, "")
		if errors.Is(err, errNotFound) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("jsqueue: ack: %w", err)
		}
		if m.Subject != queueSubject(a) {
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

// deliveredSet remembers which device each seq read through this Store
// belongs to, so an ack of it needs no lookup. It is bounded: when full
// it starts again (a forgotten seq is looked up).
type deliveredSet struct {
	mu sync.Mutex
	m  map[uint64]queue.Address
}

const deliveredMax = 1 << 18

func (d *deliveredSet) add(a queue.Address, items []queue.Item) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil || len(d.m)+len(items) > deliveredMax {
		d.m = make(map[uint64]queue.Address)
	}
	for _, it := range items {
		d.m[it.Seq] = a
	}
}

func (d *deliveredSet) take(seq uint64, a queue.Address) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	got, ok := d.m[seq]
	if ok && got == a {
		delete(d.m, seq)
		return true
	}
	return false
}

// Flush returns at once: a delete is applied by the stream before Ack
// returns.
func (s *Store) Flush(ctx context.Context) error { return ctx.Err() }

// DeleteDevice deletes a device's whole queue, for a removed device, and
// wakes its readers.
func (s *Store) DeleteDevice(ctx context.Context, a queue.Address) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if err := again(ctx, func() error { return s.stream.Purge(ctx, jetstream.WithPurgeSubject(queueSubject(a))) }); err != nil {
		return fmt.Errorf("jsqueue: delete device: %w", err)
	}
	_ = s.nc.Publish(wakeSubject(a), nil)
	return nil
}

// Depth returns how many messages a device has queued (the byte count is
// not kept by the stream and is returned as 0).
func (s *Store) Depth(ctx context.Context, a queue.Address) (int, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	info, err := s.stream.Info(ctx, jetstream.WithSubjectFilter(queueSubject(a)))
	if err != nil {
		return 0, fmt.Errorf("jsqueue: depth: %w", err)
	}
	return int(info.State.Subjects[queueSubject(a)]), nil
}
