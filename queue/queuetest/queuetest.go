// Package queuetest holds the behaviour every per-device queue backend
// must have, as tests: the Pebble store (package queue) and the JetStream
// store (package jsqueue) both run them, so the relay gets the same
// behaviour from either.
package queuetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pigeonhole/pigeonhole/queue"
)

// Queues is the relay's view of a queue backend (relay.Queues).
type Queues interface {
	Append(ctx context.Context, dedupKey []byte, msgs []queue.Message) (queue.AppendResult, error)
	Read(ctx context.Context, a queue.Address, after uint64, maxCount, maxBytes int) ([]queue.Item, error)
	Ack(ctx context.Context, a queue.Address, seqs []uint64) (int, error)
	Flush(ctx context.Context) error
	Watch(a queue.Address) (wake <-chan struct{}, cancel func())
	WatchFunc(a queue.Address, f func()) (cancel func())
	DeleteDevice(ctx context.Context, a queue.Address) error
}

// Limits are a backend's count limits for one test.
type Limits struct {
	// MaxCount is the most messages queued per device.
	MaxCount int
	// SenderMaxCount is the most messages one sender (queue.Message's
	// Sender) may have queued per device.
	SenderMaxCount int
}

// limits is a queue of n per device with no separate sender share.
func limits(n int) Limits { return Limits{MaxCount: n, SenderMaxCount: n} }

// Open returns a new, empty backend with the given limits. Two calls in
// one test may return views of the same storage (two relays on one
// cluster) or independent stores; the tests use one store each.
type Open func(t *testing.T, l Limits) Queues

// Run runs every behaviour test against backends from open.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(*testing.T, Open)
	}{
		{"AppendReadAckInOrder", testAppendReadAck},
		{"EmptyAppend", testEmptyAppend},
		{"AtomicAcrossDevices", testAtomic},
		{"QueueFull", testQueueFull},
		{"SenderShare", testSenderShare},
		{"SenderShareConcurrent", testSenderShareConcurrent},
		{"SenderShareDuplicate", testSenderShareDuplicate},
		{"DedupOnce", testDedup},
		{"DedupConcurrent", testDedupConcurrent},
		{"ReadLimits", testReadLimits},
		{"AckOnlyOwnMessages", testAckOwn},
		{"AckOutOfOrder", testAckOutOfOrder},
		{"WatchWakes", testWatch},
		{"WatchFuncCalls", testWatchFunc},
		{"DeleteDevice", testDeleteDevice},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

// Addr returns a test device address.
func Addr(b byte, dev uint32) queue.Address {
	var a queue.Address
	a.Account[0], a.Account[15] = b, 0xa5
	a.Device = dev
	return a
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func bodies(items []queue.Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = string(it.Body)
	}
	return out
}

func seqs(items []queue.Item) []uint64 {
	out := make([]uint64, len(items))
	for i, it := range items {
		out[i] = it.Seq
	}
	return out
}

func mustAppend(t *testing.T, q Queues, dedup []byte, msgs ...queue.Message) queue.AppendResult {
	t.Helper()
	res, err := q.Append(ctxT(t), dedup, msgs)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	return res
}

func readAll(t *testing.T, q Queues, a queue.Address) []queue.Item {
	t.Helper()
	items, err := q.Read(ctxT(t), a, 0, 1000, 1<<30)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return items
}

func testAppendReadAck(t *testing.T, open Open) {
	q := open(t, limits(100))
	a, b := Addr(1, 1), Addr(1, 2)
	before := time.Now().Add(-time.Second)
	for i := range 5 {
		mustAppend(t, q, nil, queue.Message{To: a, Body: fmt.Appendf(nil, "a%d", i)}, queue.Message{To: b, Body: fmt.Appendf(nil, "b%d", i)})
	}
	items := readAll(t, q, a)
	if got := bodies(items); !slices.Equal(got, []string{"a0", "a1", "a2", "a3", "a4"}) {
		t.Fatalf("device a read %q", got)
	}
	if !slices.IsSorted(seqs(items)) || slices.Compact(seqs(items)) == nil || len(slices.Compact(seqs(items))) != 5 {
		t.Fatalf("seqs not rising: %v", seqs(items))
	}
	for _, it := range items {
		if it.Time.Before(before) || it.Time.After(time.Now().Add(time.Second)) {
			t.Fatalf("message time %v is not the append's", it.Time)
		}
	}
	// Reading after a seq starts past it.
	rest, err := q.Read(ctxT(t), a, items[2].Seq, 1000, 1<<30)
	if err != nil || !slices.Equal(bodies(rest), []string{"a3", "a4"}) {
		t.Fatalf("read after seq: %q, %v", bodies(rest), err)
	}
	// Ack the first three, one of them twice and with an unknown seq.
	ack := []uint64{items[0].Seq, items[1].Seq, items[2].Seq, items[1].Seq, items[4].Seq + 1000}
	n, err := q.Ack(ctxT(t), a, ack)
	if err != nil || n != 3 {
		t.Fatalf("ack: %d, %v; want 3", n, err)
	}
	if n, err := q.Ack(ctxT(t), a, ack[:3]); err != nil || n != 0 {
		t.Fatalf("second ack: %d, %v; want 0", n, err)
	}
	if err := q.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if got := bodies(readAll(t, q, a)); !slices.Equal(got, []string{"a3", "a4"}) {
		t.Fatalf("after ack device a has %q", got)
	}
	if got := bodies(readAll(t, q, b)); len(got) != 5 {
		t.Fatalf("device b lost messages to a's ack: %q", got)
	}
}

func testEmptyAppend(t *testing.T, open Open) {
	q := open(t, limits(100))
	if _, err := q.Append(ctxT(t), nil, nil); !errors.Is(err, queue.ErrEmpty) {
		t.Fatalf("empty append: %v, want ErrEmpty", err)
	}
}

func testAtomic(t *testing.T, open Open) {
	q := open(t, limits(100))
	devs := []queue.Address{Addr(2, 1), Addr(2, 2), Addr(3, 7)}
	var msgs []queue.Message
	for i, d := range devs {
		msgs = append(msgs, queue.Message{To: d, Body: fmt.Appendf(nil, "for %d", i)})
	}
	mustAppend(t, q, []byte("one send"), msgs...)
	for i, d := range devs {
		if got := bodies(readAll(t, q, d)); !slices.Equal(got, []string{fmt.Sprintf("for %d", i)}) {
			t.Fatalf("device %d has %q", i, got)
		}
	}
}

func testQueueFull(t *testing.T, open Open) {
	q := open(t, limits(3))
	full, other := Addr(4, 1), Addr(4, 2)
	for i := range 3 {
		mustAppend(t, q, nil, queue.Message{To: full, Body: fmt.Appendf(nil, "%d", i)})
	}
	_, err := q.Append(ctxT(t), []byte("blocked send"), []queue.Message{{To: other, Body: []byte("x")}, {To: full, Body: []byte("y")}})
	if !errors.Is(err, queue.ErrQueueFull) {
		t.Fatalf("append to a full queue: %v, want ErrQueueFull", err)
	}
	if got := readAll(t, q, other); len(got) != 0 {
		t.Fatalf("a refused send stored %q for the other device", bodies(got))
	}
	// The refused id was not remembered: once there is room it lands.
	items := readAll(t, q, full)
	if _, err := q.Ack(ctxT(t), full, seqs(items[:1])); err != nil {
		t.Fatal(err)
	}
	if res := mustAppend(t, q, []byte("blocked send"), queue.Message{To: other, Body: []byte("x")}, queue.Message{To: full, Body: []byte("y")}); res.Duplicate {
		t.Fatal("a refused send's id was remembered")
	}
}

func testDedup(t *testing.T, open Open) {
	q := open(t, limits(100))
	a := Addr(5, 1)
	first := mustAppend(t, q, []byte("msg-1"), queue.Message{To: a, Body: []byte("hello")})
	if first.Duplicate {
		t.Fatal("first append is a duplicate")
	}
	again := mustAppend(t, q, []byte("msg-1"), queue.Message{To: a, Body: []byte("hello")})
	if !again.Duplicate || again.Time.UnixMilli() != first.Time.UnixMilli() {
		t.Fatalf("retry: %+v; want a duplicate stamped %v", again, first.Time)
	}
	mustAppend(t, q, []byte("msg-2"), queue.Message{To: a, Body: []byte("other")})
	if got := bodies(readAll(t, q, a)); !slices.Equal(got, []string{"hello", "other"}) {
		t.Fatalf("queue holds %q", got)
	}
}

func testDedupConcurrent(t *testing.T, open Open) {
	q := open(t, limits(100))
	a := Addr(6, 1)
	const n = 8
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		stored int
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := q.Append(ctxT(t), []byte("same id"), []queue.Message{{To: a, Body: []byte("once")}})
			if err != nil {
				t.Error(err)
				return
			}
			if !res.Duplicate {
				mu.Lock()
				stored++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if stored != 1 {
		t.Fatalf("%d of %d concurrent appends of one id stored", stored, n)
	}
	if got := readAll(t, q, a); len(got) != 1 {
		t.Fatalf("queue holds %d copies", len(got))
	}
}

func testReadLimits(t *testing.T, open Open) {
	q := open(t, limits(100))
	a := Addr(7, 1)
	for i := range 5 {
		mustAppend(t, q, nil, queue.Message{To: a, Body: fmt.Appendf(nil, "%099d", i)})
	}
	check := func(count, bytes, want int) {
		t.Helper()
		items, err := q.Read(ctxT(t), a, 0, count, bytes)
		if err != nil || len(items) != want {
			t.Fatalf("read(%d, %d): %d items, %v; want %d", count, bytes, len(items), err, want)
		}
	}
	check(2, 1<<20, 2)
	check(10, 250, 2)
	check(10, 10, 1) // at least one
	check(0, 1<<20, 0)
}

func testAckOwn(t *testing.T, open Open) {
	q := open(t, limits(100))
	a, b := Addr(8, 1), Addr(8, 2)
	mustAppend(t, q, nil, queue.Message{To: a, Body: []byte("for a")})
	items := readAll(t, q, a)
	if n, err := q.Ack(ctxT(t), b, seqs(items)); err != nil || n != 0 {
		t.Fatalf("b acked a's message: %d, %v", n, err)
	}
	if got := readAll(t, q, a); len(got) != 1 {
		t.Fatal("a's message is gone after b's ack")
	}
}

func waitWake(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("no wake-up: %s", what)
	}
}

func testWatch(t *testing.T, open Open) {
	q := open(t, limits(100))
	a := Addr(9, 1)
	ch, stop := q.Watch(a)
	defer stop()
	// A value may be pending at the start; a reader reads then.
	select {
	case <-ch:
	default:
	}
	mustAppend(t, q, nil, queue.Message{To: a, Body: []byte("wake")})
	waitWake(t, ch, "append")
	if got := bodies(readAll(t, q, a)); !slices.Equal(got, []string{"wake"}) {
		t.Fatalf("after the wake-up the reader reads %q", got)
	}
	// Two watchers of one device are both woken; a stopped one is not
	// written to after stop.
	ch2, stop2 := q.Watch(a)
	select {
	case <-ch2:
	default:
	}
	stop2()
	mustAppend(t, q, nil, queue.Message{To: a, Body: []byte("again")})
	waitWake(t, ch, "second append")
}

// testWatchFunc: WatchFunc's callback runs on an append for its device
// (and not for another device's), and not after its watch is stopped.
func testWatchFunc(t *testing.T, open Open) {
	q := open(t, limits(100))
	a, other := Addr(11, 1), Addr(11, 2)
	var (
		mu    sync.Mutex
		calls int
	)
	ch := make(chan struct{}, 1)
	stop := q.WatchFunc(a, func() {
		mu.Lock()
		calls++
		mu.Unlock()
		select {
		case ch <- struct{}{}:
		default:
		}
	})
	mustAppend(t, q, nil, queue.Message{To: a, Body: []byte("wake")})
	waitWake(t, ch, "append")
	if got := bodies(readAll(t, q, a)); !slices.Equal(got, []string{"wake"}) {
		t.Fatalf("after the call the reader reads %q", got)
	}
	stop()
	mu.Lock()
	before := calls
	mu.Unlock()
	// Appends after stop, to a and to another device: a second watch of
	// a sees its append, so it has happened, and the stopped one was not
	// called for it.
	ch2, stop2 := q.Watch(a)
	defer stop2()
	select {
	case <-ch2:
	default:
	}
	mustAppend(t, q, nil, queue.Message{To: other, Body: []byte("other")}, queue.Message{To: a, Body: []byte("after stop")})
	waitWake(t, ch2, "append after stop")
	mu.Lock()
	after := calls
	mu.Unlock()
	if after != before {
		t.Fatalf("a stopped WatchFunc was called %d more times", after-before)
	}
}

func testDeleteDevice(t *testing.T, open Open) {
	q := open(t, limits(100))
	a, b := Addr(10, 1), Addr(10, 2)
	for i := range 3 {
		mustAppend(t, q, nil, queue.Message{To: a, Body: fmt.Appendf(nil, "%d", i)}, queue.Message{To: b, Body: []byte("b")})
	}
	old := readAll(t, q, a)
	if err := q.DeleteDevice(ctxT(t), a); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, q, a); len(got) != 0 {
		t.Fatalf("deleted device still has %q", bodies(got))
	}
	if got := readAll(t, q, b); len(got) != 3 {
		t.Fatalf("other device has %d, want 3", len(got))
	}
	// Seqs are never reused: a new message sorts after every old one, so
	// a client that remembers an old seq drops nothing new.
	mustAppend(t, q, nil, queue.Message{To: a, Body: []byte("new")})
	if got := readAll(t, q, a); len(got) != 1 || got[0].Seq <= old[len(old)-1].Seq {
		t.Fatalf("after delete: %v (old last seq %d)", seqs(got), old[len(old)-1].Seq)
	}
}

// testAckOutOfOrder acks a middle message first, then the rest of what was
// read, while more is queued behind: exactly the acked ones go.
func testAckOutOfOrder(t *testing.T, open Open) {
	q := open(t, limits(100))
	a := Addr(11, 1)
	for i := range 5 {
		mustAppend(t, q, nil, queue.Message{To: a, Body: fmt.Appendf(nil, "%d", i)})
	}
	read, err := q.Read(ctxT(t), a, 0, 3, 1<<20)
	if err != nil || len(read) != 3 {
		t.Fatalf("read: %d, %v", len(read), err)
	}
	mustAppend(t, q, nil, queue.Message{To: a, Body: []byte("5")})
	if n, err := q.Ack(ctxT(t), a, []uint64{read[1].Seq}); err != nil || n != 1 {
		t.Fatalf("ack of the middle one: %d, %v", n, err)
	}
	if n, err := q.Ack(ctxT(t), a, []uint64{read[0].Seq, read[2].Seq}); err != nil || n != 2 {
		t.Fatalf("ack of the others: %d, %v", n, err)
	}
	if got := bodies(readAll(t, q, a)); !slices.Equal(got, []string{"3", "4", "5"}) {
		t.Fatalf("left: %q, want the three never read", got)
	}
}
