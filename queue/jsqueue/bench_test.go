package jsqueue_test

import (
	"context"
	"encoding/binary"
	"sync/atomic"
	"testing"

	"github.com/pigeonhole/pigeonhole/queue"
	"github.com/pigeonhole/pigeonhole/queue/jsqueue"
	"github.com/pigeonhole/pigeonhole/queue/queuetest"
)

// BenchmarkAppend is 64 concurrent appends of 256-byte messages, each with
// a client message id, on a one-node JetStream server (file storage, its
// default fsync policy). Compare queue's BenchmarkAppendDurableConcurrent,
// which fsyncs every append.
func BenchmarkAppend(b *testing.B) {
	s := open(b, connect(b, startNATS(b)), jsqueue.Config{MaxCount: 1 << 30})
	body := make([]byte, 256)
	var n atomic.Uint64
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			key := binary.BigEndian.AppendUint64([]byte("bench|"), i)
			if _, err := s.Append(context.Background(), key, []queue.Message{{To: queuetest.Addr(byte(i%100), 1), Body: body}}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkReadAck drains one device's backlog in windows of 256: a
// batched read and the acks of what it returned.
func BenchmarkReadAck(b *testing.B) {
	s := open(b, connect(b, startNATS(b)), jsqueue.Config{MaxCount: 1 << 30})
	drain(b, s, queuetest.Addr(9, 1))
}

// BenchmarkReadAckLargeStream is BenchmarkReadAck with 300,000 other
// messages (for 10,000 other devices) in the stream, as on a relay with a
// real backlog: a device's reads and deletes must not slow down with the
// size of the stream.
func BenchmarkReadAckLargeStream(b *testing.B) {
	s := open(b, connect(b, startNATS(b)), jsqueue.Config{MaxCount: 1 << 30})
	ctx := context.Background()
	body := make([]byte, 256)
	filler := make([]queue.Message, 1000)
	for i := range 300 {
		for j := range filler {
			filler[j] = queue.Message{To: queuetest.Addr(byte(i), uint32(100+j%33)), Body: body}
		}
		if _, err := s.Append(ctx, nil, filler); err != nil {
			b.Fatal(err)
		}
	}
	drain(b, s, queuetest.Addr(255, 1))
}

// drain queues b.N messages for a and times reading and acking them in
// windows of 256, as a session does.
func drain(b *testing.B, s *jsqueue.Store, a queue.Address) {
	ctx := context.Background()
	batch := make([]queue.Message, 256)
	for i := range batch {
		batch[i] = queue.Message{To: a, Body: make([]byte, 256)}
	}
	for range (b.N + 255) / 256 {
		if _, err := s.Append(ctx, nil, batch); err != nil {
			b.Fatal(err)
		}
	}
	_, stop := s.Watch(a) // a session reads it
	defer stop()
	b.ResetTimer()
	for done := 0; done < b.N; {
		items, err := s.Read(ctx, a, 0, 256, 1<<20)
		if err != nil || len(items) == 0 {
			b.Fatalf("read: %d %v", len(items), err)
		}
		seqs := make([]uint64, len(items))
		for i, it := range items {
			seqs[i] = it.Seq
		}
		if _, err := s.Ack(ctx, a, seqs); err != nil {
			b.Fatal(err)
		}
		done += len(items)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
