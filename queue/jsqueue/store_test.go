package jsqueue_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/pigeonhole/pigeonhole/queue"
	"github.com/pigeonhole/pigeonhole/queue/jsqueue"
	"github.com/pigeonhole/pigeonhole/queue/queuetest"
)

// startNATS runs a one-node JetStream server on 127.0.0.1 for the test.
func startNATS(t testing.TB) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

func connect(t testing.TB, ns *server.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func open(t testing.TB, nc *nats.Conn, cfg jsqueue.Config) *jsqueue.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := jsqueue.Open(ctx, nc, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestBehaviour runs the tests every queue backend passes (the Pebble
// store runs the same ones), each on a server of its own.
func TestBehaviour(t *testing.T) {
	queuetest.Run(t, func(t *testing.T, l queuetest.Limits) queuetest.Queues {
		return open(t, connect(t, startNATS(t)), jsqueue.Config{MaxCount: l.MaxCount, SenderMaxCount: l.SenderMaxCount})
	})
}

// TestTwoRelays: two stores on one stream, as two relays of a cluster,
// each with its own NATS connection. A message appended through one wakes
// and is read by a watcher on the other, a client message id is
// remembered across them, and an ack through either deletes.
func TestTwoRelays(t *testing.T) {
	ns := startNATS(t)
	a := open(t, connect(t, ns), jsqueue.Config{Stream: "SHARED"})
	b := open(t, connect(t, ns), jsqueue.Config{Stream: "SHARED"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dev := queuetest.Addr(1, 1)
	wake, stop := b.Watch(dev)
	defer stop()
	<-wake // the initial read
	if _, err := a.Append(ctx, []byte("id-1"), []queue.Message{{To: dev, Body: []byte("via a")}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wake:
	case <-ctx.Done():
		t.Fatal("relay b's watcher was not woken by an append through relay a")
	}
	items, err := b.Read(ctx, dev, 0, 10, 1<<20)
	if err != nil || len(items) != 1 || string(items[0].Body) != "via a" {
		t.Fatalf("relay b read %v, %v", items, err)
	}
	res, err := b.Append(ctx, []byte("id-1"), []queue.Message{{To: dev, Body: []byte("via a")}})
	if err != nil || !res.Duplicate {
		t.Fatalf("a retry through relay b: %+v, %v; want a duplicate", res, err)
	}
	if n, err := a.Ack(ctx, dev, []uint64{items[0].Seq}); err != nil || n != 1 {
		t.Fatalf("ack through relay a: %d, %v", n, err)
	}
	if items, err := b.Read(ctx, dev, 0, 10, 1<<20); err != nil || len(items) != 0 {
		t.Fatalf("after the ack relay b reads %d, %v", len(items), err)
	}
}

// TestWakeNamesSeq: the wake-up of each device of a batch names that
// device's message, which Read relies on to catch up from the stream
// leader when a replica that answered a read is behind.
func TestWakeNamesSeq(t *testing.T) {
	s := open(t, connect(t, startNATS(t)), jsqueue.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	devs := []queue.Address{queuetest.Addr(1, 1), queuetest.Addr(1, 2), queuetest.Addr(2, 1)}
	var wakes []<-chan struct{}
	for _, d := range devs {
		ch, stop := s.Watch(d)
		defer stop()
		<-ch
		wakes = append(wakes, ch)
	}
	for _, dedup := range [][]byte{nil, []byte("with an id")} {
		var msgs []queue.Message
		for _, d := range devs {
			msgs = append(msgs, queue.Message{To: d, Body: []byte("x")})
		}
		if _, err := s.Append(ctx, dedup, msgs); err != nil {
			t.Fatal(err)
		}
		for i, d := range devs {
			select {
			case <-wakes[i]:
			case <-ctx.Done():
				t.Fatal("no wake-up")
			}
			items, err := s.Read(ctx, d, 0, 100, 1<<20)
			if err != nil || len(items) == 0 {
				t.Fatal(items, err)
			}
			if got, want := s.Announced(d), items[len(items)-1].Seq; got != want {
				t.Fatalf("device %d (dedup %q): wake-up named seq %d, its message is %d", i, dedup, got, want)
			}
		}
	}
}

// TestAckPurgeNeedsNoGap: two sessions of one device on one relay, one
// of whose reads was cut short by the byte limit, must not let an ack
// purge messages that were never acked (a review found this).
func TestAckPurgeNeedsNoGap(t *testing.T) {
	s := open(t, connect(t, startNATS(t)), jsqueue.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a := queuetest.Addr(3, 1)
	_, stop := s.Watch(a)
	defer stop()
	big := make([]byte, 600<<10)
	for _, b := range [][]byte{big, big, []byte("small")} {
		if _, err := s.Append(ctx, nil, []queue.Message{{To: a, Body: b}}); err != nil {
			t.Fatal(err)
		}
	}
	first, err := s.Read(ctx, a, 0, 10, 1<<30) // session A: 1, 2, 3
	if err != nil || len(first) != 3 {
		t.Fatal(len(first), err)
	}
	second, err := s.Read(ctx, a, 0, 10, 1<<20) // session B, cut at 1 MiB: 1
	if err != nil || len(second) != 1 {
		t.Fatal(len(second), err)
	}
	if _, err := s.Append(ctx, nil, []queue.Message{{To: a, Body: []byte("4")}}); err != nil {
		t.Fatal(err)
	}
	fourth, err := s.Read(ctx, a, first[2].Seq, 10, 1<<30) // session A goes on: 4
	if err != nil || len(fourth) != 1 {
		t.Fatal(len(fourth), err)
	}
	if n, err := s.Ack(ctx, a, []uint64{first[0].Seq}); err != nil || n != 1 {
		t.Fatal(n, err)
	}
	if n, err := s.Ack(ctx, a, []uint64{fourth[0].Seq}); err != nil || n != 1 {
		t.Fatal(n, err)
	}
	left, err := s.Read(ctx, a, 0, 10, 1<<30)
	if err != nil || len(left) != 2 || left[0].Seq != first[1].Seq || left[1].Seq != first[2].Seq {
		t.Fatalf("left %d messages (%v), want the two never acked", len(left), err)
	}
}

// TestOpenNeverShrinksTheStream: a relay started with a smaller
// per-device limit must not make JetStream drop queued messages (a
// review found that updating the stream did).
func TestOpenNeverShrinksTheStream(t *testing.T) {
	ns := startNATS(t)
	s := open(t, connect(t, ns), jsqueue.Config{MaxCount: 100})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a := queuetest.Addr(4, 1)
	for range 10 {
		if _, err := s.Append(ctx, nil, []queue.Message{{To: a, Body: []byte("x")}}); err != nil {
			t.Fatal(err)
		}
	}
	small := open(t, connect(t, ns), jsqueue.Config{MaxCount: 3})
	items, err := small.Read(ctx, a, 0, 100, 1<<20)
	if err != nil || len(items) != 10 {
		t.Fatalf("after a relay with -queue-max-count 3 started: %d messages, %v; want 10", len(items), err)
	}
}
