package spec

import (
	"bytes"
	"testing"
)

// TestAckRangesVector pins the Ack frame with a range
// (testdata/vectors/ack_ranges.hex): our encoding matches it, and it
// decodes to seq 300 and the range 1..32.
func TestAckRangesVector(t *testing.T) {
	ack := &ClientEvent{Body: &ClientEvent_Ack{Ack: &Ack{Seqs: []uint64{300}, Ranges: []*SeqRange{{First: 1, Last: 32}}}}}
	got, err := AppendFrame(nil, ack)
	if err != nil {
		t.Fatal(err)
	}
	checkVector(t, "ack_ranges", got)
	var ev ClientEvent
	if err := ReadFrame(bytes.NewReader(readVector(t, "ack_ranges")), MaxFrameSize, &ev); err != nil {
		t.Fatal(err)
	}
	a := ev.GetAck()
	if len(a.GetSeqs()) != 1 || a.GetSeqs()[0] != 300 || len(a.GetRanges()) != 1 || a.GetRanges()[0].GetFirst() != 1 || a.GetRanges()[0].GetLast() != 32 {
		t.Fatalf("ack_ranges decoded to %v", a)
	}
}
