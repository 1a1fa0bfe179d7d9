package jsqueue

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/pigeonhole/pigeonhole/queue"
)

// roomConcurrency bounds the count requests one append has in flight (one
// per recipient device).
const roomConcurrency = 16

// checkRoom returns queue.ErrQueueFull if msgs would put a recipient
// device over MaxCount. The stream's per-subject limit is a sender's share
// of a device (a subject per device and sender), so the device's total is
// counted here, one small request per recipient device (see deviceCount).
// Appends in flight at the same time are not seen, so each may overshoot
// the total by its own message.
func (s *Store) checkRoom(ctx context.Context, msgs []queue.Message) error {
	adding := make(map[queue.Address]int, len(msgs))
	for _, m := range msgs {
		adding[m.To]++
	}
	var (
		wg    sync.WaitGroup
		sem   = make(chan struct{}, roomConcurrency)
		mu    sync.Mutex
		first error
	)
	for a, n := range adding {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			var have uint64
			err := again(ctx, func() (err error) {
				have, err = s.deviceCount(ctx, a)
				return err
			})
			if err == nil && have+uint64(n) > uint64(s.cfg.MaxCount) {
				err = queue.ErrQueueFull
			}
			if err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// deviceCount is how many messages device a has queued: a batched direct
// get of one message on the device's subjects, whose Nats-Num-Pending
// header counts those after it. It is answered by any replica (not only
// the stream's leader, which the appends keep busy), and its answer is
// one message whatever the number of senders queued for the device; a
// replica that is behind counts a little low.
func (s *Store) deviceCount(ctx context.Context, a queue.Address) (uint64, error) {
	req, _ := json.Marshal(directGet{Seq: 1, NextFor: devicePattern(a), Batch: 1, MaxBytes: 1})
	inbox := nats.NewInbox()
	replies := make(chan *nats.Msg, 3) // the message and the end marker
	sub, err := s.nc.ChanSubscribe(inbox, replies)
	if err != nil {
		return 0, fmt.Errorf("jsqueue: count a queue: %w", err)
	}
	defer sub.Unsubscribe()
	if err := s.nc.PublishRequest("$JS.API.DIRECT.GET."+s.cfg.Stream, inbox, req); err != nil {
		return 0, fmt.Errorf("jsqueue: count a queue: %w", err)
	}
	var m *nats.Msg
	select {
	case m = <-replies:
	case <-ctx.Done():
		return 0, fmt.Errorf("jsqueue: count a queue: %w", ctx.Err())
	}
	switch m.Header.Get("Status") {
	case "":
	case "404", "204":
		return 0, nil
	case "503":
		return 0, errNoLeader
	default:
		return 0, fmt.Errorf("jsqueue: count a queue: status %s %s", m.Header.Get("Status"), m.Header.Get("Description"))
	}
	pending, err := strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("jsqueue: count a queue: bad pending header: %w", err)
	}
	return pending + 1, nil
}

// duplicate reports, for an append that was refused, whether its dedup
// key is stored: then the append is a retry of a stored one, and its
// answer is a duplicate's.
func (s *Store) duplicate(ctx context.Context, dedup []byte) (queue.AppendResult, bool, error) {
	if len(dedup) == 0 {
		return queue.AppendResult{}, false, nil
	}
	t, ok, err := s.dedupTime(ctx, dedup)
	if err != nil || !ok {
		return queue.AppendResult{}, false, err
	}
	return queue.AppendResult{Time: t, Duplicate: true}, true, nil
}
