package relay

import (
	"cmp"
	"math"
	"slices"
	"sync"

	"github.com/pigeonhole/pigeonhole/spec"
)

// inflight is the set of envelopes a session has written and the client
// has not acked yet: at most the session's window. The delivery loop adds
// to it; the ack reader takes from it, resolving an ack's ranges against
// it, so a range deletes only what this session delivered.
type inflight struct {
	mu   sync.Mutex
	seqs map[uint64]struct{}
}

func (f *inflight) add(seq uint64) {
	f.mu.Lock()
	if f.seqs == nil {
		f.seqs = make(map[uint64]struct{})
	}
	f.seqs[seq] = struct{}{}
	f.mu.Unlock()
}

func (f *inflight) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.seqs)
}

// ack takes an ack's envelopes out of the set and returns the seqs to
// delete: every seq it names (delivered on this session or not, as
// protocol.md allows) and every in-flight seq within one of its ranges.
// A range whose first is after its last is a protocol error (ok false).
// The work is bounded by the frame: its ranges are sorted and merged,
// then each in-flight seq (at most the window's) is looked up in them.
func (f *inflight) ack(a *spec.Ack) (seqs []uint64, ok bool) {
	ranges := make([]seqRange, 0, len(a.GetRanges()))
	for _, r := range a.GetRanges() {
		if r.GetFirst() > r.GetLast() {
			return nil, false
		}
		ranges = append(ranges, seqRange{r.GetFirst(), r.GetLast()})
	}
	seqs = a.GetSeqs()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, q := range seqs {
		delete(f.seqs, q)
	}
	if len(ranges) == 0 || len(f.seqs) == 0 {
		return seqs, true
	}
	ranges = mergeRanges(ranges)
	seqs = slices.Clone(seqs)
	for q := range f.seqs {
		// The range holding q, if any, is the last one starting at or
		// before it.
		i, _ := slices.BinarySearchFunc(ranges, q, func(r seqRange, q uint64) int {
			if r.first <= q {
				return -1
			}
			return 1
		})
		if i > 0 && ranges[i-1].last >= q {
			seqs = append(seqs, q)
			delete(f.seqs, q)
		}
	}
	return seqs, true
}

// seqRange is an Ack range, first <= last.
type seqRange struct{ first, last uint64 }

// mergeRanges sorts ranges and merges those that overlap or touch, so
// they are disjoint and ascending.
func mergeRanges(rs []seqRange) []seqRange {
	slices.SortFunc(rs, func(x, y seqRange) int { return cmp.Compare(x.first, y.first) })
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if last.last == math.MaxUint64 || r.first <= last.last+1 {
			last.last = max(last.last, r.last)
			continue
		}
		out = append(out, r)
	}
	return out
}
