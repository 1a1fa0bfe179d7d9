package relay

import (
	"math"
	"slices"
	"testing"

	"github.com/pigeonhole/pigeonhole/spec"
)

func TestInflightAck(t *testing.T) {
	var f inflight
	for _, q := range []uint64{3, 4, 5, 9, 10, 40, math.MaxUint64} {
		f.add(q)
	}
	seqs, ok := f.ack(&spec.Ack{Seqs: []uint64{77}, Ranges: []*spec.SeqRange{
		{First: 9, Last: 9}, {First: 4, Last: 8}, {First: 6, Last: 10}, {First: 41, Last: math.MaxUint64 - 1},
		{First: math.MaxUint64, Last: math.MaxUint64},
	}})
	slices.Sort(seqs)
	if !ok || !slices.Equal(seqs, []uint64{4, 5, 9, 10, 77, math.MaxUint64}) {
		t.Fatalf("ack = %v %v", seqs, ok)
	}
	if f.len() != 2 {
		t.Fatalf("%d left in flight, want 3 and 40", f.len())
	}
	if _, ok := f.ack(&spec.Ack{Ranges: []*spec.SeqRange{{First: 2, Last: 1}}}); ok {
		t.Fatal("a range with first after last was taken")
	}
	if got := mergeRanges([]seqRange{{10, 12}, {1, 3}, {4, 5}, {11, 20}, {30, 30}}); !slices.Equal(got, []seqRange{{1, 5}, {10, 20}, {30, 30}}) {
		t.Fatalf("merge = %v", got)
	}
}
