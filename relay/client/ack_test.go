package client

import (
	"slices"
	"testing"

	"github.com/pigeonhole/pigeonhole/spec"
)

func TestAckOf(t *testing.T) {
	for _, tc := range []struct {
		seqs   []uint64
		single []uint64
		ranges [][2]uint64
	}{
		{seqs: []uint64{5, 6, 7}, single: []uint64{5, 6, 7}},
		{seqs: []uint64{1, 2, 3, 4}, ranges: [][2]uint64{{1, 4}}},
		{seqs: []uint64{9, 3, 4, 5, 6, 6, 20, 7, 11, 12}, single: []uint64{9, 11, 12, 20}, ranges: [][2]uint64{{3, 7}}},
		{seqs: []uint64{1, 2, 3, 4, 10, 11, 12, 13, 14}, ranges: [][2]uint64{{1, 4}, {10, 14}}},
	} {
		a := ackOf(tc.seqs)
		var ranges [][2]uint64
		for _, r := range a.Ranges {
			ranges = append(ranges, [2]uint64{r.First, r.Last})
		}
		if !slices.Equal(a.Seqs, tc.single) || !slices.Equal(ranges, tc.ranges) {
			t.Errorf("ackOf(%v) = seqs %v ranges %v, want %v %v", tc.seqs, a.Seqs, ranges, tc.single, tc.ranges)
		}
		// Nothing lost: every seq is named once, by seq or range.
		var got []uint64
		got = append(got, a.Seqs...)
		for _, r := range a.Ranges {
			for q := r.First; q <= r.Last; q++ {
				got = append(got, q)
			}
		}
		slices.Sort(got)
		if want := slices.Compact(slices.Sorted(slices.Values(tc.seqs))); !slices.Equal(got, want) {
			t.Errorf("ackOf(%v) names %v", tc.seqs, got)
		}
	}
	var _ *spec.Ack = ackOf(nil)
}
