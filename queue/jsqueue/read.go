package jsqueue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
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
	watched, want := s.announced(a)
	last, total := after, 0
	for _, it := range out {
		last, total = it.Seq, total+len(it.Body)
	}
	for last < want && len(out) < maxCount {
		m, err := s.leaderGet(ctx, last+1, devicePattern(a))
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
	if watched {
		s.out.read(a, after, out)
	}
	return out, nil
}

// perMessageOverhead bounds a stored message's subject and headers.
const perMessageOverhead = 512

// readOnce is one batched direct get.
func (s *Store) readOnce(ctx context.Context, a queue.Address, after uint64, maxCount, maxBytes int) ([]queue.Item, error) {
	// The server counts a message's subject and headers against
	// max_bytes too; this side counts bodies only, so the server is given
	// room for them and the exact budget is kept below.
	serverBytes := maxBytes + maxCount*perMessageOverhead
	if serverBytes < maxBytes {
		serverBytes = maxBytes // overflow
	}
	req, _ := json.Marshal(directGet{Seq: after + 1, NextFor: devicePattern(a), Batch: maxCount, MaxBytes: serverBytes})
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

// Flush returns at once: a delete is applied by the stream before Ack
// returns.
func (s *Store) Flush(ctx context.Context) error { return ctx.Err() }

// DeleteDevice deletes a device's whole queue, for a removed device, and
// wakes its readers.
func (s *Store) DeleteDevice(ctx context.Context, a queue.Address) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if err := again(ctx, func() error { return s.stream.Purge(ctx, jetstream.WithPurgeSubject(devicePattern(a))) }); err != nil {
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
	info, err := s.stream.Info(ctx, jetstream.WithSubjectFilter(devicePattern(a)))
	if err != nil {
		return 0, fmt.Errorf("jsqueue: depth: %w", err)
	}
	n := 0
	for _, c := range info.State.Subjects {
		n += int(c)
	}
	return n, nil
}
