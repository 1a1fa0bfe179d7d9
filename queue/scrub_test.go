package queue_test

import (
	"crypto/rand"
	"testing"

	"github.com/pigeonhole/pigeonhole/queue"
)

// BenchmarkScrub is the periodic scrub of a database holding 64 MiB of
// queued ciphertext (65,536 messages of 1 KiB for 256 devices) after 1,024
// of them were acked since the last scrub: its cost follows what the
// database holds, not what was deleted.
func BenchmarkScrub(b *testing.B) {
	s := openStore(b, queue.Config{MaxCount: 1 << 30, MaxBytes: 1 << 40})
	const devices, perDevice = 256, 256
	batch := make([]queue.Message, perDevice)
	for d := range devices {
		for i := range batch {
			body := make([]byte, 1024)
			rand.Read(body)
			batch[i] = queue.Message{To: addr(byte(d), 1), Body: body}
		}
		if _, err := s.Append(ctx(), nil, batch); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Scrub(ctx()); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(devices * perDevice * 1024)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		// Four devices drain their whole queues.
		for d := range 4 {
			a := addr(byte((4*i+d)%devices), 1)
			items, err := s.Read(ctx(), a, 0, perDevice, 1<<30)
			if err != nil {
				b.Fatal(err)
			}
			seqs := make([]uint64, len(items))
			for j, it := range items {
				seqs[j] = it.Seq
			}
			if len(seqs) > 0 {
				if _, err := s.Ack(ctx(), a, seqs); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.StartTimer()
		if err := s.Scrub(ctx()); err != nil {
			b.Fatal(err)
		}
	}
}
