package jsqueue_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pigeonhole/pigeonhole/queue"
	"github.com/pigeonhole/pigeonhole/queue/jsqueue"
	"github.com/pigeonhole/pigeonhole/queue/queuetest"
)

// TestShareAcrossRelays: one sender floods a device through two relays
// (two Stores on one stream, each with its own connection) at once; the
// share holds exactly across them, and another sender still gets in
// through either.
func TestShareAcrossRelays(t *testing.T) {
	ns := startNATS(t)
	cfg := jsqueue.Config{Stream: "SHARED", MaxCount: 100, SenderMaxCount: 7}
	relays := []*jsqueue.Store{open(t, connect(t, ns), cfg), open(t, connect(t, ns), cfg)}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dev := queuetest.Addr(20, 1)
	const n = 20
	var (
		wg              sync.WaitGroup
		mu              sync.Mutex
		stored, refused int
	)
	for i := range n {
		wg.Go(func() {
			_, err := relays[i%2].Append(ctx, nil, []queue.Message{{To: dev, Sender: queuetest.Sender(0xee), Body: fmt.Appendf(nil, "%d", i)}})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				stored++
			case errors.Is(err, queue.ErrSenderShare):
				refused++
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if stored != 7 || refused != n-7 {
		t.Fatalf("%d stored and %d refused through two relays; want 7 and %d", stored, refused, n-7)
	}
	for _, r := range relays {
		if _, err := r.Append(ctx, nil, []queue.Message{{To: dev, Sender: queuetest.Sender(1), Body: []byte("friend")}}); err != nil {
			t.Fatalf("a friend's append: %v", err)
		}
	}
	if d, err := relays[1].Depth(ctx, dev); err != nil || d != 9 {
		t.Fatalf("depth %d, %v; want 9", d, err)
	}
}
