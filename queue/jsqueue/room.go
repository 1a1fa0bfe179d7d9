package jsqueue

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pigeonhole/pigeonhole/queue"
)

// roomConcurrency bounds the stream-info requests one append has in
// flight (one per recipient account).
const roomConcurrency = 16

// checkRoom returns queue.ErrQueueFull if msgs would put a recipient
// device over MaxCount. The stream's per-subject limit is a sender's share
// of a device (a subject per device and sender), so the device's total is
// counted here: one stream-info request per recipient account, answered
// by the leader, counting the messages on every subject of its devices.
// Appends in flight at the same time are not seen, so each may overshoot
// the total by its own message.
func (s *Store) checkRoom(ctx context.Context, msgs []queue.Message) error {
	adding := make(map[queue.Address]int, len(msgs))
	accounts := make(map[[16]byte]bool)
	for _, m := range msgs {
		adding[m.To]++
		accounts[m.To.Account] = true
	}
	var (
		wg    sync.WaitGroup
		sem   = make(chan struct{}, roomConcurrency)
		mu    sync.Mutex
		first error
	)
	for acct := range accounts {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			err := s.accountRoom(ctx, acct, adding)
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

// accountRoom checks one account's devices of adding.
func (s *Store) accountRoom(ctx context.Context, acct [16]byte, adding map[queue.Address]int) error {
	prefix := "phq." + queue.Address{Account: acct}.Token()
	prefix = prefix[:strings.LastIndexByte(prefix, '.')+1] // phq.<account hex>.
	var info *jetstream.StreamInfo
	err := again(ctx, func() (err error) {
		info, err = s.stream.Info(ctx, jetstream.WithSubjectFilter(prefix+">"))
		return err
	})
	if err != nil {
		return fmt.Errorf("jsqueue: count a recipient's queue: %w", err)
	}
	have := make(map[uint32]uint64)
	for subj, n := range info.State.Subjects {
		rest := strings.TrimPrefix(subj, prefix)
		dev, _, _ := strings.Cut(rest, ".")
		if a, ok := queue.ParseToken(prefix[len("phq."):] + dev); ok {
			have[a.Device] += n
		}
	}
	for a, n := range adding {
		if a.Account == acct && have[a.Device]+uint64(n) > uint64(s.cfg.MaxCount) {
			return queue.ErrQueueFull
		}
	}
	return nil
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
