package queue_test

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pigeonhole/pigeonhole/queue"
)

func TestAppendReadAckInOrder(t *testing.T) {
	s := openStore(t, queue.Config{})
	a, b := addr(1, 1), addr(1, 2)
	for i := range 5 {
		msgs := []queue.Message{{To: a, Body: fmt.Appendf(nil, "a%d", i)}, {To: b, Body: fmt.Appendf(nil, "b%d", i)}}
		if _, err := s.Append(ctx(), nil, msgs); err != nil {
			t.Fatal(err)
		}
	}
	items, err := s.Read(ctx(), a, 0, 3, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if got := bodies(items); !slices.Equal(got, []string{"a0", "a1", "a2"}) || items[0].Seq != 1 || items[2].Seq != 3 {
		t.Fatalf("read %v", got)
	}
	rest, _ := s.Read(ctx(), a, items[2].Seq, 10, 1<<20)
	if got := bodies(rest); !slices.Equal(got, []string{"a3", "a4"}) {
		t.Fatalf("read after 3: %v", got)
	}
	n, err := s.Ack(ctx(), a, []uint64{2, 1, 99})
	if err != nil || n != 2 {
		t.Fatalf("ack: %d %v", n, err)
	}
	again, _ := s.Read(ctx(), a, 0, 10, 1<<20)
	if got := bodies(again); !slices.Equal(got, []string{"a2", "a3", "a4"}) {
		t.Fatalf("after ack: %v", got)
	}
	if c, _, _ := s.Depth(b); c != 5 {
		t.Fatalf("other device's depth %d", c)
	}
}

func TestReadStopsAtByteBudget(t *testing.T) {
	s := openStore(t, queue.Config{})
	a := addr(1, 1)
	for range 4 {
		if _, err := s.Append(ctx(), nil, []queue.Message{{To: a, Body: make([]byte, 100)}}); err != nil {
			t.Fatal(err)
		}
	}
	items, _ := s.Read(ctx(), a, 0, 10, 250)
	if len(items) != 2 {
		t.Fatalf("%d items within 250 bytes", len(items))
	}
	items, _ = s.Read(ctx(), a, 0, 10, 10)
	if len(items) != 1 {
		t.Fatalf("a budget smaller than one message still returns one: got %d", len(items))
	}
}

// TestSeqsSurviveRestartAndAreNeverReused acks everything, reopens, and
// checks the next message gets a new seq (a client that remembers old seqs
// must not mistake a new message for an old one).
func TestSeqsSurviveRestartAndAreNeverReused(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	s, _ := queue.Open(db, queue.Config{}, nil)
	a := addr(2, 1)
	for range 3 {
		if _, err := s.Append(ctx(), nil, []queue.Message{{To: a, Body: []byte("x")}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Ack(ctx(), a, []uint64{3}); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx()); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = openDB(t, dir)
	defer db.Close()
	s, _ = queue.Open(db, queue.Config{}, nil)
	items, _ := s.Read(ctx(), a, 0, 10, 1<<20)
	if len(items) != 2 || items[0].Seq != 1 || items[1].Seq != 2 {
		t.Fatalf("after reopen: %+v", items)
	}
	if _, err := s.Append(ctx(), nil, []queue.Message{{To: a, Body: []byte("new")}}); err != nil {
		t.Fatal(err)
	}
	items, _ = s.Read(ctx(), a, 2, 10, 1<<20)
	if len(items) != 1 || items[0].Seq != 4 {
		t.Fatalf("new message got seq %d, want 4", items[0].Seq)
	}
}

func TestQuotaFullStoresNothing(t *testing.T) {
	s := openStore(t, queue.Config{MaxCount: 2, MaxBytes: 1000, SenderMaxCount: 2, SenderMaxBytes: 1000})
	full, free := addr(3, 1), addr(3, 2)
	for range 2 {
		if _, err := s.Append(ctx(), nil, []queue.Message{{To: full, Body: []byte("x")}}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.Append(ctx(), nil, []queue.Message{{To: free, Body: []byte("y")}, {To: full, Body: []byte("z")}})
	if !errors.Is(err, queue.ErrQueueFull) {
		t.Fatalf("append to a full queue: %v", err)
	}
	if c, _, _ := s.Depth(free); c != 0 {
		t.Fatalf("a refused send left %d messages on the other device", c)
	}
	if _, err := s.Append(ctx(), nil, []queue.Message{{To: free, Body: make([]byte, 1001)}}); !errors.Is(err, queue.ErrTooLarge) {
		t.Fatalf("message over the byte quota: %v", err)
	}
	if _, err := s.Append(ctx(), nil, []queue.Message{{To: free, Body: make([]byte, 600)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx(), nil, []queue.Message{{To: free, Body: make([]byte, 600)}}); !errors.Is(err, queue.ErrQueueFull) {
		t.Fatalf("over the byte quota: %v", err)
	}
	// An ack makes room again.
	if _, err := s.Ack(ctx(), full, []uint64{1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx(), nil, []queue.Message{{To: full, Body: []byte("w")}}); err != nil {
		t.Fatalf("after an ack: %v", err)
	}
}

func TestDedupStoresOnce(t *testing.T) {
	s := openStore(t, queue.Config{})
	a := addr(4, 1)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		news int
		when = map[int64]bool{}
	)
	for range 20 {
		wg.Go(func() {
			r, err := s.Append(ctx(), []byte("sender|msg-1"), []queue.Message{{To: a, Body: []byte("hi")}})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			if !r.Duplicate {
				news++
			}
			when[r.Time.UnixMilli()] = true
			mu.Unlock()
		})
	}
	wg.Wait()
	if c, _, _ := s.Depth(a); news != 1 || c != 1 || len(when) != 1 {
		t.Fatalf("%d new appends, %d stored, %d distinct times", news, c, len(when))
	}
}

func TestWatchWakesOnAppend(t *testing.T) {
	s := openStore(t, queue.Config{})
	a := addr(5, 1)
	wake, cancel := s.Watch(a)
	defer cancel()
	go func() {
		_, _ = s.Append(ctx(), nil, []queue.Message{{To: a, Body: []byte("ping")}})
	}()
	select {
	case <-wake:
	case <-time.After(10 * time.Second):
		t.Fatal("no wake-up")
	}
	items, err := s.Read(ctx(), a, 0, 1, 1<<20)
	if err != nil || len(items) != 1 {
		t.Fatalf("read after wake: %v %v", items, err)
	}
}

// TestConcurrentAppendsNeverSkipped has many writers append to one device
// while a reader follows with a cursor, as the delivery loop does; the
// reader must see every message exactly once, in seq order, even though
// appends commit out of order.
func TestConcurrentAppendsNeverSkipped(t *testing.T) {
	s := openStore(t, queue.Config{})
	a := addr(6, 1)
	const writers, each = 16, 50
	wake, cancel := s.Watch(a)
	defer cancel()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if _, err := s.Append(ctx(), nil, []queue.Message{{To: a, Body: fmt.Appendf(nil, "%d/%d", w, i)}}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	var (
		cursor uint64
		seen   = map[string]bool{}
	)
	deadline := time.After(30 * time.Second)
	for len(seen) < writers*each {
		items, err := s.Read(ctx(), a, cursor, 100, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			if it.Seq != cursor+1 {
				t.Fatalf("seq %d after %d", it.Seq, cursor)
			}
			cursor = it.Seq
			seen[string(it.Body)] = true
		}
		if len(items) > 0 {
			continue
		}
		select {
		case <-wake:
		case <-deadline:
			t.Fatalf("read %d of %d", len(seen), writers*each)
		}
	}
	wg.Wait()
}

func TestExpiry(t *testing.T) {
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	s := openStore(t, queue.Config{Lifetime: time.Hour, DedupWindow: 2 * time.Hour, Now: clk.Now})
	a := addr(7, 1)
	if _, err := s.Append(ctx(), []byte("k1"), []queue.Message{{To: a, Body: []byte("old")}}); err != nil {
		t.Fatal(err)
	}
	clk.advance(50 * time.Minute)
	if _, err := s.Append(ctx(), nil, []queue.Message{{To: a, Body: []byte("new")}}); err != nil {
		t.Fatal(err)
	}
	clk.advance(20 * time.Minute) // "old" is 70 minutes old, "new" 20
	items, _ := s.Read(ctx(), a, 0, 10, 1<<20)
	if got := bodies(items); !slices.Equal(got, []string{"new"}) {
		t.Fatalf("read skips expired messages: got %v", got)
	}
	n, err := s.Expire(ctx(), clk.Now())
	if err != nil || n != 1 {
		t.Fatalf("expire: %d %v", n, err)
	}
	if c, _, _ := s.Depth(a); c != 1 {
		t.Fatalf("depth after expiry %d", c)
	}
	// Within the dedup window the key still holds...
	if r, _ := s.Append(ctx(), []byte("k1"), []queue.Message{{To: a, Body: []byte("again")}}); !r.Duplicate {
		t.Fatal("dedup key forgotten inside its window")
	}
	// ...and after it, it is forgotten.
	clk.advance(time.Hour)
	if _, err := s.Expire(ctx(), clk.Now()); err != nil {
		t.Fatal(err)
	}
	if r, _ := s.Append(ctx(), []byte("k1"), []queue.Message{{To: a, Body: []byte("again")}}); r.Duplicate {
		t.Fatal("dedup key remembered past its window")
	}
}

func TestDeleteDevice(t *testing.T) {
	s := openStore(t, queue.Config{})
	a := addr(8, 1)
	for range 3 {
		if _, err := s.Append(ctx(), nil, []queue.Message{{To: a, Body: []byte("x")}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteDevice(ctx(), a); err != nil {
		t.Fatal(err)
	}
	if items, _ := s.Read(ctx(), a, 0, 10, 1<<20); len(items) != 0 {
		t.Fatalf("%d messages left", len(items))
	}
}

// TestAckRepeatsAndExtremes acks a seq several times and the largest seq:
// the quota counts each message once, and the other seqs are deleted.
func TestAckRepeatsAndExtremes(t *testing.T) {
	s := openStore(t, queue.Config{MaxCount: 3, SenderMaxCount: 3})
	a := addr(10, 1)
	for range 3 {
		if _, err := s.Append(ctx(), nil, []queue.Message{{To: a, Body: []byte("x")}}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.Ack(ctx(), a, []uint64{1, 1, 1}); err != nil || n != 1 {
		t.Fatalf("ack 1,1,1: %d %v", n, err)
	}
	if c, _, _ := s.Depth(a); c != 2 {
		t.Fatalf("depth %d after acking one message three times", c)
	}
	if _, err := s.Append(ctx(), nil, []queue.Message{{To: a, Body: []byte("y")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx(), nil, []queue.Message{{To: a, Body: []byte("z")}}); !errors.Is(err, queue.ErrQueueFull) {
		t.Fatalf("quota after repeated acks: %v", err)
	}
	if n, err := s.Ack(ctx(), a, []uint64{2, math.MaxUint64}); err != nil || n != 1 {
		t.Fatalf("ack 2 and MaxUint64: %d %v", n, err)
	}
}

// TestAbandonedAppendWakesReaders: a committed message that becomes
// readable because an earlier reservation was abandoned must wake the
// reader.
func TestAbandonedAppendWakesReaders(t *testing.T) {
	s := openStore(t, queue.Config{MaxCount: 1, SenderMaxCount: 1})
	a, full := addr(11, 1), addr(11, 2)
	if _, err := s.Append(ctx(), nil, []queue.Message{{To: full, Body: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	wake, cancel := s.Watch(a)
	defer cancel()
	// Reserves a seq on a, then is refused on full: the seq is abandoned.
	if _, err := s.Append(ctx(), nil, []queue.Message{{To: a, Body: []byte("lost")}, {To: full, Body: []byte("y")}}); !errors.Is(err, queue.ErrQueueFull) {
		t.Fatal(err)
	}
	select {
	case <-wake:
	default:
		t.Fatal("abandoning a reservation woke nobody")
	}
	if _, err := s.Append(ctx(), nil, []queue.Message{{To: a, Body: []byte("kept")}}); err != nil {
		t.Fatal(err)
	}
	items, _ := s.Read(ctx(), a, 0, 10, 1<<20)
	if got := bodies(items); !slices.Equal(got, []string{"kept"}) {
		t.Fatalf("read %v", got)
	}
}

// TestLen follows the number of stored messages through appends, a
// duplicate, a refused append, acks, expiry, a deleted device and a
// reopen.
func TestLen(t *testing.T) {
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	dir := t.TempDir()
	db := openDB(t, dir)
	cfg := queue.Config{Lifetime: time.Hour, MaxCount: 4, SenderMaxCount: 4, Now: clk.Now}
	s, err := queue.Open(db, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	want := func(n int64) {
		t.Helper()
		if got := s.Len(); got != n {
			t.Fatalf("Len = %d, want %d", got, n)
		}
	}
	a, b, c := addr(9, 1), addr(9, 2), addr(9, 3)
	want(0)
	if _, err := s.Append(ctx(), []byte("k"), []queue.Message{{To: a, Body: []byte("1")}, {To: b, Body: []byte("1")}}); err != nil {
		t.Fatal(err)
	}
	want(2)
	if r, _ := s.Append(ctx(), []byte("k"), []queue.Message{{To: a, Body: []byte("1")}, {To: b, Body: []byte("1")}}); !r.Duplicate {
		t.Fatal("not a duplicate")
	}
	want(2)
	for range 3 {
		if _, err := s.Append(ctx(), nil, []queue.Message{{To: a, Body: []byte("x")}}); err != nil {
			t.Fatal(err)
		}
	}
	want(5)
	if _, err := s.Append(ctx(), nil, []queue.Message{{To: a, Body: []byte("over quota")}, {To: c, Body: []byte("x")}}); !errors.Is(err, queue.ErrQueueFull) {
		t.Fatalf("append over quota: %v", err)
	}
	want(5)
	if n, err := s.Ack(ctx(), a, []uint64{1, 2, 2, 77}); err != nil || n != 2 {
		t.Fatalf("ack: %d %v", n, err)
	}
	want(3)
	clk.advance(2 * time.Hour)
	if _, err := s.Append(ctx(), nil, []queue.Message{{To: c, Body: []byte("fresh")}}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Expire(ctx(), clk.Now()); err != nil || n != 3 {
		t.Fatalf("expire: %d %v", n, err)
	}
	want(1)
	if _, err := s.Append(ctx(), nil, []queue.Message{{To: b, Body: []byte("y")}, {To: b, Body: []byte("z")}}); err != nil {
		t.Fatal(err)
	}
	want(3)
	if err := s.DeleteDevice(ctx(), b); err != nil {
		t.Fatal(err)
	}
	want(1)
	db.Close()
	db = openDB(t, dir)
	defer db.Close()
	if s, err = queue.Open(db, cfg, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	want(1)
}
