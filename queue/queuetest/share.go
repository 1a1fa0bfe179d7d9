package queuetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/pigeonhole/pigeonhole/queue"
)

// Sender returns a test sending account.
func Sender(b byte) [16]byte {
	var s [16]byte
	s[0], s[15] = b, 0x5a
	return s
}

// testSenderShare: one sender fills its share of a device's queue and is
// refused with ErrSenderShare, storing nothing of that send; other
// senders still get in, up to the device's own quota; an ack gives the
// share back, and deleting the device clears every share.
func testSenderShare(t *testing.T, open Open) {
	q := open(t, Limits{MaxCount: 10, SenderMaxCount: 3})
	dev, other := Addr(12, 1), Addr(12, 2)
	attacker := Sender(0xee)
	from := func(s [16]byte, to queue.Address, body string) queue.Message {
		return queue.Message{To: to, Sender: s, Body: []byte(body)}
	}
	for i := range 3 {
		mustAppend(t, q, nil, from(attacker, dev, fmt.Sprintf("flood %d", i)))
	}
	over := []queue.Message{from(attacker, other, "x"), from(attacker, dev, "flood 3")}
	if _, err := q.Append(ctxT(t), []byte("over the share"), over); !errors.Is(err, queue.ErrSenderShare) {
		t.Fatalf("append past the sender's share: %v, want ErrSenderShare", err)
	}
	if got := readAll(t, q, other); len(got) != 0 {
		t.Fatalf("a refused send stored %q for the other device", bodies(got))
	}
	// The share is per device: the same sender may still write to another.
	mustAppend(t, q, nil, from(attacker, other, "hello other"))
	// Friends are not locked out: three more senders fill the device's
	// 10 (3 of the attacker's, then 3+3+1), after which the device itself
	// is full.
	for f := range 2 {
		for i := range 3 {
			mustAppend(t, q, nil, from(Sender(byte(f+1)), dev, fmt.Sprintf("friend %d.%d", f, i)))
		}
	}
	last := Sender(3)
	mustAppend(t, q, nil, from(last, dev, "tenth"))
	if _, err := q.Append(ctxT(t), nil, []queue.Message{from(last, dev, "eleventh")}); !errors.Is(err, queue.ErrQueueFull) {
		t.Fatalf("append to a full device from a sender under its share: %v, want ErrQueueFull", err)
	}
	// An ack of one of the attacker's messages gives one back to it (and
	// of a friend's, room in the device), and the refused send's id was
	// not remembered.
	items := readAll(t, q, dev)
	if len(items) != 10 || string(items[0].Body) != "flood 0" || string(items[3].Body) != "friend 0.0" {
		t.Fatalf("device holds %q", bodies(items))
	}
	if n, err := q.Ack(ctxT(t), dev, []uint64{items[0].Seq, items[3].Seq}); err != nil || n != 2 {
		t.Fatalf("ack: %d, %v", n, err)
	}
	if res := mustAppend(t, q, []byte("over the share"), over...); res.Duplicate {
		t.Fatal("a refused send's id was remembered")
	}
	if _, err := q.Append(ctxT(t), nil, []queue.Message{from(attacker, dev, "flood 4")}); !errors.Is(err, queue.ErrSenderShare) {
		t.Fatalf("append past the share after one ack: %v, want ErrSenderShare", err)
	}
	// A deleted device starts with nothing counted for anyone.
	if err := q.DeleteDevice(ctxT(t), dev); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		mustAppend(t, q, nil, from(attacker, dev, fmt.Sprintf("again %d", i)))
	}
}

// testSenderShareConcurrent: concurrent appends of one sender to one
// device store exactly its share.
func testSenderShareConcurrent(t *testing.T, open Open) {
	q := open(t, Limits{MaxCount: 100, SenderMaxCount: 5})
	dev := Addr(13, 1)
	const n = 16
	var (
		wg              sync.WaitGroup
		mu              sync.Mutex
		stored, refused int
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := q.Append(ctxT(t), nil, []queue.Message{{To: dev, Sender: Sender(0xee), Body: fmt.Appendf(nil, "%d", i)}})
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
		}()
	}
	wg.Wait()
	if stored != 5 || refused != n-5 {
		t.Fatalf("%d stored and %d refused of %d concurrent appends; want 5 and %d", stored, refused, n, n-5)
	}
	if got := readAll(t, q, dev); len(got) != 5 {
		t.Fatalf("queue holds %d", len(got))
	}
}

// testSenderShareDuplicate: a retry of a stored send is a duplicate even
// when its sender has since used up its share (the retry stores nothing,
// so it takes nothing of the share).
func testSenderShareDuplicate(t *testing.T, open Open) {
	q := open(t, Limits{MaxCount: 100, SenderMaxCount: 2})
	dev := Addr(14, 1)
	msg := queue.Message{To: dev, Sender: Sender(0xee), Body: []byte("first")}
	first := mustAppend(t, q, []byte("id-1"), msg)
	mustAppend(t, q, []byte("id-2"), queue.Message{To: dev, Sender: Sender(0xee), Body: []byte("second")})
	again, err := q.Append(ctxT(t), []byte("id-1"), []queue.Message{msg})
	if err != nil || !again.Duplicate || again.Time.UnixMilli() != first.Time.UnixMilli() {
		t.Fatalf("retry at the share: %+v, %v; want a duplicate stamped %v", again, err, first.Time)
	}
	if got := readAll(t, q, dev); len(got) != 2 {
		t.Fatalf("queue holds %q", bodies(got))
	}
}
