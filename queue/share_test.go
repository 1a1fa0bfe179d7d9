package queue_test

import (
	"errors"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/pigeonhole/pigeonhole/queue"
)

func sender(b byte) [16]byte { return [16]byte{b} }

// TestSenderShareSurvivesRestart: the share is counted from the stored
// messages, so a restarted relay refuses a sender at its share.
func TestSenderShareSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	cfg := queue.Config{SenderMaxCount: 2}
	s, _ := queue.Open(db, cfg, nil)
	a := addr(1, 1)
	for range 2 {
		if _, err := s.Append(ctx(), nil, []queue.Message{{To: a, Sender: sender(9), Body: []byte("x")}}); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	db = openDB(t, dir)
	defer db.Close()
	s, _ = queue.Open(db, cfg, nil)
	if _, err := s.Append(ctx(), nil, []queue.Message{{To: a, Sender: sender(9), Body: []byte("x")}}); !errors.Is(err, queue.ErrSenderShare) {
		t.Fatalf("after a restart: %v, want ErrSenderShare", err)
	}
	if _, err := s.Append(ctx(), nil, []queue.Message{{To: a, Sender: sender(8), Body: []byte("y")}}); err != nil {
		t.Fatalf("another sender after a restart: %v", err)
	}
}

// TestSenderShareExpiry: expired messages give their sender's share back
// once the expiry pass deletes them.
func TestSenderShareExpiry(t *testing.T) {
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	s := openStore(t, queue.Config{SenderMaxCount: 1, Lifetime: time.Hour, Now: clk.Now})
	a := addr(2, 1)
	msg := []queue.Message{{To: a, Sender: sender(9), Body: []byte("x")}}
	if _, err := s.Append(ctx(), nil, msg); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx(), nil, msg); !errors.Is(err, queue.ErrSenderShare) {
		t.Fatalf("second append: %v, want ErrSenderShare", err)
	}
	clk.advance(2 * time.Hour)
	if n, err := s.Expire(ctx(), clk.Now()); err != nil || n != 1 {
		t.Fatalf("expire: %d, %v", n, err)
	}
	if _, err := s.Append(ctx(), nil, msg); err != nil {
		t.Fatalf("append after expiry: %v", err)
	}
}

// TestSenderByteShare: a sender's bytes are bounded per device too.
func TestSenderByteShare(t *testing.T) {
	s := openStore(t, queue.Config{MaxBytes: 1000, SenderMaxBytes: 100})
	a := addr(3, 1)
	body := func(n int) []byte { return make([]byte, n) }
	if _, err := s.Append(ctx(), nil, []queue.Message{{To: a, Sender: sender(9), Body: body(60)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx(), nil, []queue.Message{{To: a, Sender: sender(9), Body: body(50)}}); !errors.Is(err, queue.ErrSenderShare) {
		t.Fatalf("past the byte share: %v, want ErrSenderShare", err)
	}
	if _, err := s.Append(ctx(), nil, []queue.Message{{To: a, Sender: sender(8), Body: body(50)}}); err != nil {
		t.Fatalf("another sender: %v", err)
	}
	if _, err := s.Append(ctx(), nil, []queue.Message{{To: a, Sender: sender(9), Body: body(40)}}); err != nil {
		t.Fatalf("within the byte share: %v", err)
	}
}

// TestLegacyValues: messages stored before sender shares (no sender in
// the value) are read back whole, count against the device's quota and
// no sender's share, and ack as before.
func TestLegacyValues(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	defer db.Close()
	a := addr(4, 1)
	t0 := time.UnixMilli(1_700_000_000_000)
	for seq := uint64(1); seq <= 2; seq++ {
		if err := queue.PutLegacy(db, a, seq, t0, []byte("old")); err != nil {
			t.Fatal(err)
		}
	}
	s, err := queue.Open(db, queue.Config{MaxCount: 3, SenderMaxCount: 1, Lifetime: 100 * 365 * 24 * time.Hour}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	items, err := s.Read(ctx(), a, 0, 10, 1<<20)
	if err != nil || !slices.Equal(bodies(items), []string{"old", "old"}) || !items[0].Time.Equal(t0) {
		t.Fatalf("legacy read: %+v, %v", items, err)
	}
	if _, err := s.Append(ctx(), nil, []queue.Message{{To: a, Sender: sender(9), Body: []byte("new")}}); err != nil {
		t.Fatalf("append beside legacy messages: %v", err)
	}
	if _, err := s.Append(ctx(), nil, []queue.Message{{To: a, Sender: sender(8), Body: []byte("new")}}); !errors.Is(err, queue.ErrQueueFull) {
		t.Fatalf("legacy messages do not count against the device: %v", err)
	}
	if n, err := s.Ack(ctx(), a, []uint64{1, 2}); err != nil || n != 2 {
		t.Fatalf("ack legacy: %d, %v", n, err)
	}
	if c, b, _ := s.Depth(a); c != 1 || b != 3 {
		t.Fatalf("depth after acking legacy messages: %d, %d", c, b)
	}
}
