package relay_test

import (
	"fmt"
	"testing"

	"github.com/pigeonhole/pigeonhole/spec"
)

// rawAck writes an Ack frame on a raw session stream.
func rawAck(t *testing.T, st interface{ Write([]byte) (int, error) }, ack *spec.Ack) {
	t.Helper()
	if _, err := st.Write(frame(t, &spec.ClientEvent{Body: &spec.ClientEvent_Ack{Ack: ack}})); err != nil {
		t.Fatal(err)
	}
}

// TestAckRanges pins protocol.md "Acknowledgements": a range acks the
// envelopes delivered on this session within it, and nothing the session
// has not delivered, however wide the range; ranges and seqs mix; a range
// whose first is after its last closes the connection.
func TestAckRanges(t *testing.T) {
	r := startRelay(t, testConfig())
	alice, bob := r.register(t, 0), r.register(t, 0)
	ac := r.session(t, alice, 0)
	for i := range 10 {
		if _, err := sendText(t, ac, bob, []uint32{1}, fmt.Sprint("m", i)); err != nil {
			t.Fatal(err)
		}
	}
	qc, st := r.rawSession(t, bob, 4)
	var seqs []uint64
	for range 4 {
		env := nextRawEvent(t, st).GetEnvelope()
		if env == nil {
			t.Fatal("want an envelope")
		}
		seqs = append(seqs, env.Seq)
	}
	// A range far wider than what was delivered: only the four go, and
	// the window opens for the next four.
	rawAck(t, st, &spec.Ack{Ranges: []*spec.SeqRange{{First: 0, Last: seqs[3] + 1000}}})
	for range 4 {
		env := nextRawEvent(t, st).GetEnvelope()
		if env == nil {
			t.Fatal("want an envelope after the range freed the window")
		}
		seqs = append(seqs, env.Seq)
	}
	// Overlapping ranges and a seq together: the fifth and sixth by
	// ranges, the eighth by seq; the seventh stays.
	rawAck(t, st, &spec.Ack{Seqs: []uint64{seqs[7]}, Ranges: []*spec.SeqRange{
		{First: seqs[5], Last: seqs[5]}, {First: seqs[4], Last: seqs[5]},
	}})
	// Two of the last two queued come (the window has three free places).
	var last []uint64
	for range 2 {
		env := nextRawEvent(t, st).GetEnvelope()
		if env == nil {
			t.Fatal("want the last envelopes")
		}
		last = append(last, env.Seq)
	}
	if ev := nextRawEvent(t, st); ev.GetDrained() == nil {
		t.Fatalf("event %v, want drained", ev)
	}
	if got := r.metric(t, "pigeonhole_envelopes_acked_total"); got != 7 {
		t.Fatalf("acked %v envelopes, want 7", got)
	}
	rawAck(t, st, &spec.Ack{Ranges: []*spec.SeqRange{{First: 5, Last: 4}}})
	waitClosedWith(t, qc, spec.CloseProtocol)

	// A new session gets exactly what was not acked: the seventh and
	// the last two, in order.
	_, st = r.rawSession(t, bob, 8)
	for _, want := range []uint64{seqs[6], last[0], last[1]} {
		env := nextRawEvent(t, st).GetEnvelope()
		if env == nil || env.Seq != want {
			t.Fatalf("got %v, want envelope seq %d", env, want)
		}
	}
	if ev := nextRawEvent(t, st); ev.GetDrained() == nil {
		t.Fatalf("event %v, want drained", ev)
	}
}
