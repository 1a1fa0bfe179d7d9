package client

import (
	"slices"

	"github.com/pigeonhole/pigeonhole/spec"
)

// minAckRun is the shortest run of consecutive seqs sent as a range: a
// range costs about as many bytes as three small seqs.
const minAckRun = 4

// ackOf encodes seqs as an Ack: runs of at least minAckRun consecutive
// seqs as ranges, the others one by one.
func ackOf(seqs []uint64) *spec.Ack {
	if len(seqs) < minAckRun {
		return &spec.Ack{Seqs: seqs}
	}
	sorted := slices.Compact(slices.Sorted(slices.Values(seqs)))
	a := &spec.Ack{}
	for i := 0; i < len(sorted); {
		j := i + 1
		for j < len(sorted) && sorted[j] == sorted[j-1]+1 {
			j++
		}
		if j-i >= minAckRun {
			a.Ranges = append(a.Ranges, &spec.SeqRange{First: sorted[i], Last: sorted[j-1]})
		} else {
			a.Seqs = append(a.Seqs, sorted[i:j]...)
		}
		i = j
	}
	return a
}
