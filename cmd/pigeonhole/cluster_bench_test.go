package main

import (
	"slices"
	"testing"
	"time"

	"github.com/pigeonhole/pigeonhole/relay/client"
)

// BenchmarkClusterDelivery is the send-to-delivery latency on a cluster:
// two relay processes on a three-node JetStream cluster (R3), Alice's
// session on relay A, Bob's on relay B ("across") or also on relay A
// ("same"). One message at a time, 256 bytes, from the start of Send to
// Bob's receipt; reported as p50 and p99.
func BenchmarkClusterDelivery(b *testing.B) {
	nc := startNATSCluster(b, 3)
	store := append(nc.storeFlags(), "-nats-replicas", "3", "-media", "off", "-register-burst", "1000", "-send-burst", "1000000000")
	ra := startRelayProc(b, b.TempDir(), store...)
	rb := startRelayProc(b, b.TempDir(), store...)
	for _, where := range []string{"same", "across"} {
		b.Run(where, func(b *testing.B) {
			bobRelay := ra
			if where == "across" {
				bobRelay = rb
			}
			alice := registerProc(b, ra.opts)
			bob := registerProc(b, bobRelay.opts)
			ac := sessionProc(b, ra.opts, alice, 0)
			bc := sessionProc(b, bobRelay.opts, bob, 64)
			body := make([]byte, 256)
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				if _, err := ac.Send(testCtx(b), &client.Message{Recipient: bob.AccountID, ClientMessageID: msgID(),
					Devices: []client.DeviceMessage{{DeviceID: 1, Type: 2, Content: body}}}); err != nil {
					b.Fatal(err)
				}
				for {
					ev, err := bc.Next(testCtx(b))
					if err != nil {
						b.Fatal(err)
					}
					if ev.Kind == client.EventEnvelope {
						lat = append(lat, time.Since(start))
						if err := bc.Ack(ev.Envelope.Seq); err != nil {
							b.Fatal(err)
						}
						break
					}
				}
			}
			b.StopTimer()
			slices.Sort(lat)
			q := func(p float64) float64 {
				return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
			}
			b.ReportMetric(q(0.50), "p50-ms")
			b.ReportMetric(q(0.99), "p99-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}
