package jskeys

import (
	"context"
	"hash/maphash"
)

// turns lets the writers of one record inside this process take turns,
// so that many concurrent claims on one device's prekeys (a popular
// device, fetched by many senders through one relay) do not all read the
// same revision and all but one lose the compare-and-set, over and over.
// Writers in other processes are still kept apart by the compare-and-set;
// turns only removes the conflicts a process would have with itself.
//
// Records hash onto a fixed set of slots, so memory is bounded whatever
// the number of records; two records sharing a slot merely wait for each
// other.
type turns struct {
	seed  maphash.Seed
	slots [64]chan struct{}
}

func newTurns() *turns {
	t := &turns{seed: maphash.MakeSeed()}
	for i := range t.slots {
		t.slots[i] = make(chan struct{}, 1)
	}
	return t
}

// take waits for key's turn, or for ctx to end. The caller calls the
// returned function when its write has landed or failed.
func (t *turns) take(ctx context.Context, key string) (release func(), err error) {
	slot := t.slots[maphash.String(t.seed, key)%uint64(len(t.slots))]
	select {
	case slot <- struct{}{}:
		return func() { <-slot }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
