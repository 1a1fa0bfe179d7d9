package relay_test

import (
	"testing"

	"github.com/pigeonhole/pigeonhole/relay/client"
)

// histCount returns how many observations the histogram series name (with
// label stage, if not empty) holds.
func (r *testRelay) histCount(t testing.TB, name, stage string) uint64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		var n uint64
		for _, m := range mf.GetMetric() {
			match := stage == ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "stage" && l.GetValue() == stage {
					match = true
				}
			}
			if match {
				n += m.GetHistogram().GetSampleCount()
			}
		}
		return n
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestStageMetrics: the series that break one message's time down
// (README, "Where the time goes") count every stored send and every
// delivery an append woke.
func TestStageMetrics(t *testing.T) {
	r := startRelay(t, testConfig())
	alice, bob := r.register(t, 5), r.register(t, 5)
	bc := r.session(t, bob, 16)
	nextKind(t, bc, client.EventDrained)
	ac := r.session(t, alice, 0)
	wait0 := r.histCount(t, "pigeonhole_request_wait_seconds", "")
	const n = 3
	for i := range n {
		if _, err := sendText(t, ac, bob, []uint32{1}, "hello"); err != nil {
			t.Fatal(err)
		}
		ev, err := bc.Next(ctxT(t))
		for err == nil && ev.Kind == client.EventDrained {
			ev, err = bc.Next(ctxT(t))
		}
		if err != nil || ev.Kind != client.EventEnvelope {
			t.Fatalf("event %+v, %v; want an envelope", ev, err)
		}
		if err := bc.Ack(ev.Envelope.Seq); err != nil {
			t.Fatal(err)
		}
		// Every wake-up that found new envelopes was timed: at least one
		// per message here, since each waits for the one before.
		// (The relay times the write after it returns, so the client may
		// read the envelope first.)
		waitUntil(t, "the delivery timed", func() bool {
			return r.histCount(t, "pigeonhole_delivery_write_seconds", "") >= uint64(i+1)
		})
	}
	for _, stage := range []string{"checks", "store"} {
		if got := r.histCount(t, "pigeonhole_send_stage_seconds", stage); got != n {
			t.Errorf("send stage %s: %d observations, want %d", stage, got, n)
		}
	}
	if got := r.histCount(t, "pigeonhole_request_wait_seconds", "") - wait0; got < n {
		t.Errorf("request wait: %d observations for %d sends", got, n)
	}
}
