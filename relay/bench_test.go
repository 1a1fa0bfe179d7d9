package relay_test

import (
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pigeonhole/pigeonhole/relay/client"
)

// BenchmarkSendDeliverAck measures the full path through a real relay over
// QUIC on 127.0.0.1: send (durable, fsynced, before "accepted"), delivery
// on the recipient's session stream, ack (delete). One op is one message.
// Run with -cpu to vary the number of concurrent senders: each parallel
// goroutine sends over its own connection to its own recipient.
func BenchmarkSendDeliverAck(b *testing.B) {
	for _, senders := range []int{1, 16, 64} {
		b.Run(map[int]string{1: "senders=1", 16: "senders=16", 64: "senders=64"}[senders], func(b *testing.B) {
			benchSendDeliverAck(b, senders)
		})
	}
}

func benchSendDeliverAck(b *testing.B, senders int) {
	r := startRelay(b, testConfig())
	type pair struct {
		sc   *client.Conn
		rc   *client.Conn
		to   *device
		done chan struct{}
	}
	pairs := make([]*pair, senders)
	for i := range pairs {
		from, to := r.register(b, 0), r.register(b, 0)
		p := &pair{sc: r.session(b, from, 0), rc: r.session(b, to, 256), to: to, done: make(chan struct{})}
		pairs[i] = p
	}
	ctx := ctxT(b)
	var received atomic.Int64
	want := int64(b.N)
	var wg sync.WaitGroup
	for _, p := range pairs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for received.Load() < want {
				ev, err := p.rc.Next(ctx)
				if err != nil {
					return
				}
				if ev.Kind != client.EventEnvelope {
					continue
				}
				if err := p.rc.Ack(ev.Envelope.Seq); err != nil {
					b.Error(err)
					return
				}
				if received.Add(1) == want {
					for _, q := range pairs {
						q.rc.Close()
					}
				}
			}
		}()
	}
	content := make([]byte, 256)
	var next atomic.Int64
	b.SetBytes(int64(len(content)))
	b.ResetTimer()
	var swg sync.WaitGroup
	for _, p := range pairs {
		swg.Add(1)
		go func() {
			defer swg.Done()
			for next.Add(1) <= want {
				id := make([]byte, 16)
				binary.BigEndian.PutUint64(id, uint64(rand.Int64()))
				m := &client.Message{Recipient: p.to.AccountID, ClientMessageID: id,
					Devices: []client.DeviceMessage{{DeviceID: 1, Type: 2, Content: content}}}
				if _, err := p.sc.Send(ctx, m); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	swg.Wait()
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkSendToOffline measures what pushing adds to a send: one sender
// sends to an offline recipient that has an APNs token, on a relay without
// push, with push coalesced (one push, then every send inside the window),
// and with a push for every send (window 1 ns; the local APNs endpoint runs
// in this process and takes CPU too). One op is one durable send.
func BenchmarkSendToOffline(b *testing.B) {
	for _, c := range []struct {
		name   string
		window time.Duration // 0: push off
	}{{"push=off", 0}, {"push=coalesced", time.Hour}, {"push=every", time.Nanosecond}} {
		b.Run(c.name, func(b *testing.B) {
			var r *testRelay
			if c.window == 0 {
				r = startRelay(b, testConfig())
			} else {
				r, _ = startPushRelay(b, c.window)
			}
			from, to := r.register(b, 0), r.register(b, 0)
			if c.window != 0 {
				r.pushToken(b, to)
			}
			sc := r.session(b, from, 0)
			ctx := ctxT(b)
			id := make([]byte, 16)
			for b.Loop() {
				binary.BigEndian.PutUint64(id, rand.Uint64())
				if _, err := sc.Send(ctx, &client.Message{Recipient: to.AccountID, ClientMessageID: id,
					Devices: []client.DeviceMessage{{DeviceID: 1, Type: 2, Content: make([]byte, 256)}}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkGroupSend measures one multi_send to a 256-member group of 600
// devices (256 accounts, 172 of them with two linked devices), 256-byte
// ciphertexts, durable before it is answered; recipients are offline.
// It reports the median and 99th percentile of the round trip. Run it
// with -benchtime 300x or so: every op queues 600 messages.
func BenchmarkGroupSend(b *testing.B) {
	r := startRelay(b, testConfig())
	sender := r.register(b, 0)
	sc := r.session(b, sender, 0)
	var accounts []client.AccountMessage
	for i := range 256 {
		d := r.register(b, 0)
		ids := []uint32{1}
		if i < 172 {
			pc := r.session(b, d, 0)
			for range 2 {
				ids = append(ids, r.link(b, d, pc).DeviceID)
			}
			pc.Close()
		}
		accounts = append(accounts, client.AccountMessage{Recipient: d.AccountID, Devices: devMsgs(ids, string(make([]byte, 256)))})
	}
	ctx := ctxT(b)
	var lat []time.Duration
	id := make([]byte, 16)
	for b.Loop() {
		binary.BigEndian.PutUint64(id, rand.Uint64())
		start := time.Now()
		if _, err := sc.SendMulti(ctx, &client.MultiMessage{ClientMessageID: id, Accounts: accounts}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(600, "devices/op")
}
