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
// byte or blob quota.
var ErrQuota = errors.New("blobs: upload quota exceeded")

// Defaults for the zero fields of QuotaConfig.
const (
	DefaultQuotaBytes     = 1 << 30
	DefaultQuotaBlobs     = 1000
	DefaultMinBilledBytes = 64 << 10
)

// QuotaConfig sets an account's daily upload allowance. The zero value of
// each field is its default.
type QuotaConfig struct {
	// Bytes is the most an account may be granted for upload per UTC day,
	// counted in billed bytes (see MinBilled). Default 1 GiB.
	Bytes int64
	// Blobs is the most upload grants an account may get per UTC day,
	// whatever their sizes. Default 1,000.
	Blobs int64
	// MinBilled is the least a grant counts against Bytes: a 1-byte blob
	// still costs the store a file (or object) and a disk block, so it is
	// billed as MinBilled bytes. Default 64 KiB.
	MinBilled int64
}

func (c QuotaConfig) withDefaults() QuotaConfig {
	if c.Bytes <= 0 {
		c.Bytes = DefaultQuotaBytes
	}
	if c.Blobs <= 0 {
		c.Blobs = DefaultQuotaBlobs
	}
	if c.MinBilled <= 0 {
		c.MinBilled = DefaultMinBilledBytes
	}
	return c
}

// Quota bounds the bytes and the number of blobs each account may be
// granted for upload per UTC day, in Pebble under the prefix "b/q/". It
// records only two counts per account and day: no blob id is tied to an
// account. It counts grants, not uploads: a grant that is never used still
// counts.
type Quota struct {
	db  *pebble.DB
	cfg QuotaConfig
	mu  sync.Mutex
}

// NewQuota returns a quota on db with the allowance cfg sets.
func NewQuota(db *pebble.DB, cfg QuotaConfig) *Quota {
	return &Quota{db: db, cfg: cfg.withDefaults()}
}

func quotaKey(acct [16]byte, day uint32) []byte {
	k := append([]byte("b/q/"), acct[:]...)
	return binary.BigEndian.AppendUint32(k, day)
}

// Billed is what a grant of n bytes counts against the byte quota: n,
// but at least MinBilled.
func (q *Quota) Billed(n int64) int64 { return max(n, q.cfg.MinBilled) }

// Reserve counts one blob of n bytes (billed as Billed(n)) against acct's
// quota for the day of now, or returns an error wrapping ErrQuota (and
// counts nothing).
func (q *Quota) Reserve(ctx context.Context, acct [16]byte, n int64, now time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if n <= 0 {
		return fmt.Errorf("%w: a blob has at least one byte", ErrQuota)
	}
	billed := q.Billed(n)
	if billed > q.cfg.Bytes {
		return fmt.Errorf("%w: %d bytes at once, the daily quota is %d", ErrQuota, billed, q.cfg.Bytes)
	}
	day := uint32(now.UTC().Unix() / 86400)
	k := quotaKey(acct, day)
	q.mu.Lock()
	defer q.mu.Unlock()
	var used, blobs int64
	v, closer, err := q.db.Get(k)
	switch {
	case err == nil:
		// 8 bytes (bytes only) was the old record; 16 adds the count.
		if len(v) >= 8 {
			used = int64(binary.BigEndian.Uint64(v))
		}
		if len(v) >= 16 {
			blobs = int64(binary.BigEndian.Uint64(v[8:]))
		}
		closer.Close()
	case !errors.Is(err, pebble.ErrNotFound):
		return fmt.Errorf("blobs: read quota: %w", err)
	}
	if blobs >= q.cfg.Blobs {
		return fmt.Errorf("%w: %d of %d blobs granted today", ErrQuota, blobs, q.cfg.Blobs)
	}
	if billed > q.cfg.Bytes-used {
		return fmt.Errorf("%w: %d of %d bytes used today", ErrQuota, used, q.cfg.Bytes)
	}
	rec := binary.BigEndian.AppendUint64(nil, uint64(used+billed))
	rec = binary.BigEndian.AppendUint64(rec, uint64(blobs+1))
	b := q.db.NewBatch()
	defer b.Close()
	_ = b.Set(k, rec, nil)
	// Earlier days no longer count.
	_ = b.DeleteRange(quotaKey(acct, 0), k, nil)
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("blobs: write quota: %w", err)
	}
	return nil
}
