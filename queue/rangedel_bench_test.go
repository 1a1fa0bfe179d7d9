package queue_test

import (
	"testing"

	"github.com/pigeonhole/pigeonhole/queue"
)

// BenchmarkAckTombstones compares the two ways remove can delete an
// acked run: a point tombstone per message (what the Store does) and a
// range tombstone per run. Each op is one message read and acked as the
// relay's sessions do (BenchmarkStoreCeiling), plus a read from the
// start of a queue whose acked messages left tombstones behind, as a
// device's first read on a new session does.
func BenchmarkAckTombstones(b *testing.B) {
	for _, mode := range []struct {
		name   string
		range_ bool
	}{{"point", false}, {"range", true}} {
		b.Run(mode.name, func(b *testing.B) {
			old := queue.SetRangeDeletes(mode.range_)
			defer queue.SetRangeDeletes(old)
			b.Run("ceiling", BenchmarkStoreCeiling)
			b.Run("ack", BenchmarkAckDelete)
			b.Run("reconnect", benchmarkReadAfterAcks)
		})
	}
}

// benchmarkReadAfterAcks is 100 devices that each had 1,000 messages
// delivered and acked in runs of 32 and have one new one: an op is
// reading it from the start of the queue (cursor 0), past what the acks
// left.
func benchmarkReadAfterAcks(b *testing.B) {
	s := openStore(b, queue.Config{MaxCount: 1 << 30, MaxBytes: 1 << 40})
	body := make([]byte, 256)
	const devices, history = 100, 1000
	for d := range devices {
		a := addr(byte(d), 2)
		msgs := make([]queue.Message, history)
		for i := range msgs {
			msgs[i] = queue.Message{To: a, Body: body}
		}
		if _, err := s.Append(ctx(), nil, msgs); err != nil {
			b.Fatal(err)
		}
		var cursor uint64
		for {
			items, err := s.Read(ctx(), a, cursor, 32, 1<<20)
			if err != nil {
				b.Fatal(err)
			}
			if len(items) == 0 {
				break
			}
			seqs := make([]uint64, len(items))
			for i, it := range items {
				seqs[i] = it.Seq
			}
			cursor = seqs[len(seqs)-1]
			if _, err := s.Ack(ctx(), a, seqs); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := s.Append(ctx(), nil, []queue.Message{{To: a, Body: body}}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		items, err := s.Read(ctx(), addr(byte(i%devices), 2), 0, 32, 1<<20)
		if err != nil || len(items) != 1 {
			b.Fatalf("read %d items, %v", len(items), err)
		}
	}
}
