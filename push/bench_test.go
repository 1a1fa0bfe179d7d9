package push

import (
	"context"
	"testing"
	"time"

	"github.com/pigeonhole/pigeonhole/push/pushtest"
)

// BenchmarkNotify measures what a send pays for pushing, per recipient
// device without a session: "coalesced" is the common case (the device
// was pushed within the window: a map lookup), "first" the first mail in
// a window (a sealed-token read and its index record's read from Pebble,
// then a hand-off to the queue; no worker runs, so nothing is sent).
func BenchmarkNotify(b *testing.B) {
	a := pushtest.NewAPNs(b)
	store := newStore(b)
	svc, err := New(context.Background(), Config{APNs: apnsConfig(a), Window: time.Hour, QueueSize: 1 << 22}, store, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	const devices = 1000
	for i := range devices {
		d := device(byte(i))
		d.Account[1] = byte(i >> 8)
		// One token per device: a token is on one device only.
		tok := APNsToken([]byte{byte(i), byte(i >> 8), 1, 2, 3, 4, 5, 6}, "org.pigeonhole.app", false)
		if err := store.Set(context.Background(), d, tok); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("coalesced", func(b *testing.B) {
		d := device(0)
		svc.Notify(d)
		for b.Loop() {
			svc.Notify(d)
		}
	})
	b.Run("first", func(b *testing.B) {
		i := 0
		for b.Loop() {
			d := device(byte(i))
			d.Account[1] = byte(i >> 8)
			svc.Connected(d)
			svc.Notify(d)
			i = (i + 1) % devices
			if len(svc.jobs[APNs]) > 1<<21 {
				b.StopTimer()
				for len(svc.jobs[APNs]) > 0 {
					<-svc.jobs[APNs]
				}
				b.StartTimer()
			}
		}
	})
}
