package blobs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// ErrQuota is returned when an account would upload more than its daily
// byte quota.
var ErrQuota = errors.New("blobs: upload quota exceeded")

// Quota bounds the bytes each account may be granted for upload per UTC
// day, in Pebble under the prefix "b/q/". It records only a count per
// account and day: no blob id is tied to an account.
type Quota struct {
	db    *pebble.DB
	limit int64
	mu    sync.Mutex
}

// NewQuota returns a quota of limit bytes per account per day.
func NewQuota(db *pebble.DB, limit int64) *Quota {
	return &Quota{db: db, limit: limit}
}

func quotaKey(acct [16]byte, day uint32) []byte {
	k := append([]byte("b/q/"), acct[:]...)
	return binary.BigEndian.AppendUint32(k, day)
}

// Reserve counts n bytes against acct's quota for the day of now, or
// returns ErrQuota (and counts nothing).
func (q *Quota) Reserve(ctx context.Context, acct [16]byte, n int64, now time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if n <= 0 || n > q.limit {
		return fmt.Errorf("%w: %d bytes at once, the daily quota is %d", ErrQuota, n, q.limit)
	}
	day := uint32(now.UTC().Unix() / 86400)
	k := quotaKey(acct, day)
	q.mu.Lock()
	defer q.mu.Unlock()
	var used int64
	v, closer, err := q.db.Get(k)
	switch {
	case err == nil:
		if len(v) == 8 {
			used = int64(binary.BigEndian.Uint64(v))
		}
		closer.Close()
	case !errors.Is(err, pebble.ErrNotFound):
		return fmt.Errorf("blobs: read quota: %w", err)
	}
	if n > q.limit-used {
		return fmt.Errorf("%w: %d of %d bytes used today", ErrQuota, used, q.limit)
	}
	b := q.db.NewBatch()
	defer b.Close()
	_ = b.Set(k, binary.BigEndian.AppendUint64(nil, uint64(used+n)), nil)
	// Earlier days no longer count.
	_ = b.DeleteRange(quotaKey(acct, 0), k, nil)
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("blobs: write quota: %w", err)
	}
	return nil
}
