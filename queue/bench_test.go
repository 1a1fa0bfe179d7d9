package queue_test

import (
	"encoding/binary"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pigeonhole/pigeonhole/queue"
)

// BenchmarkAppendDurable is one sender appending 256-byte messages, each
// synced before the next: the fsync latency bound.
func BenchmarkAppendDurable(b *testing.B) {
	s := openStore(b, queue.Config{MaxCount: 1 << 30, MaxBytes: 1 << 40})
	body := make([]byte, 256)
	b.SetBytes(int64(len(body)))
	for i := 0; b.Loop(); i++ {
		if _, err := s.Append(ctx(), nil, []queue.Message{{To: addr(byte(i), 1), Body: body}}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendDurableConcurrent is 64 concurrent senders sharing fsyncs
// through Pebble's commit pipeline, each with a dedup key as the relay
// sends them.
func BenchmarkAppendDurableConcurrent(b *testing.B) {
	s := openStore(b, queue.Config{MaxCount: 1 << 30, MaxBytes: 1 << 40})
	body := make([]byte, 256)
	b.SetBytes(int64(len(body)))
	var n atomic.Uint64
	b.SetParallelism(max(1, 64/runtimeProcs()))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			key := binary.BigEndian.AppendUint64([]byte("bench|"), i)
			if _, err := s.Append(ctx(), key, []queue.Message{{To: addr(byte(i), 1), Body: body}}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkAckDelete reads and acks in windows of 256, as a draining
// device does (deletes are not synced).
func BenchmarkAckDelete(b *testing.B) {
	s := openStore(b, queue.Config{MaxCount: 1 << 30, MaxBytes: 1 << 40})
	a := addr(9, 1)
	body := make([]byte, 256)
	batch := make([]queue.Message, 256)
	for i := range batch {
		batch[i] = queue.Message{To: a, Body: body}
	}
	for range (b.N + 255) / 256 {
		if _, err := s.Append(ctx(), nil, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	var cursor uint64
	for done := 0; done < b.N; {
		items, err := s.Read(ctx(), a, cursor, 256, 1<<20)
		if err != nil || len(items) == 0 {
			b.Fatalf("read: %d %v", len(items), err)
		}
		seqs := make([]uint64, len(items))
		for i, it := range items {
			seqs[i] = it.Seq
		}
		cursor = seqs[len(seqs)-1]
		if _, err := s.Ack(ctx(), a, seqs); err != nil {
			b.Fatal(err)
		}
		done += len(items)
	}
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

// BenchmarkStoreCeiling is the relay's storage work per message with no
// network, protobuf or auth: 16 senders with 32 messages in flight each append 256-byte messages with
// dedup keys (each synced), 100 recipients each wait for their queue,
// read up to 32 at a time and ack them, as sessions do. An op is one
// message appended, read and acked, so ns/op bounds the relay's
// throughput on this machine from the storage side alone (README,
// "Performance").
func BenchmarkStoreCeiling(b *testing.B) {
	const senders, recipients = 16 * 32, 100 // 16 senders, 32 in flight each
	s := openStore(b, queue.Config{MaxCount: 1 << 30, MaxBytes: 1 << 40})
	body := make([]byte, 256)
	var (
		next  atomic.Int64 // messages handed to senders
		acked atomic.Int64
		done  = make(chan struct{})
		wg    sync.WaitGroup
	)
	total := int64(b.N)
	for r := range recipients {
		wg.Go(func() {
			a := addr(byte(r), 1)
			wake, stop := s.Watch(a)
			defer stop()
			var cursor uint64
			seqs := make([]uint64, 0, 32)
			for {
				items, err := s.Read(ctx(), a, cursor, 32, 1<<20)
				if err != nil {
					b.Error(err)
					return
				}
				if len(items) == 0 {
					select {
					case <-wake:
						continue
					case <-done:
						return
					}
				}
				seqs = seqs[:0]
				for _, it := range items {
					seqs = append(seqs, it.Seq)
				}
				cursor = seqs[len(seqs)-1]
				if _, err := s.Ack(ctx(), a, seqs); err != nil {
					b.Error(err)
					return
				}
				if acked.Add(int64(len(seqs))) >= total {
					close(done)
				}
			}
		})
	}
	b.ResetTimer()
	var sw sync.WaitGroup
	for range senders {
		sw.Go(func() {
			for {
				i := next.Add(1)
				if i > total {
					return
				}
				key := binary.BigEndian.AppendUint64([]byte("ceiling|"), uint64(i))
				m := []queue.Message{{To: addr(byte(i%recipients), 1), Body: body}}
				if _, err := s.Append(ctx(), key, m); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	sw.Wait()
	<-done
	b.StopTimer()
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
