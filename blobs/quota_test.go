package blobs

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestQuotaPerAccountPerDay(t *testing.T) {
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	q := NewQuota(db, QuotaConfig{Bytes: 100, MinBilled: 1})
	ctx := context.Background()
	day := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	a, b := [16]byte{1}, [16]byte{2}
	if err := q.Reserve(ctx, a, 60, day); err != nil {
		t.Fatal(err)
	}
	if err := q.Reserve(ctx, a, 41, day); !errors.Is(err, ErrQuota) {
		t.Fatalf("over quota: %v", err)
	}
	if err := q.Reserve(ctx, a, 40, day); err != nil {
		t.Fatalf("up to the quota: %v", err)
	}
	if err := q.Reserve(ctx, b, 100, day); err != nil {
		t.Fatalf("another account: %v", err)
	}
	if err := q.Reserve(ctx, a, 100, day.Add(24*time.Hour)); err != nil {
		t.Fatalf("the next day: %v", err)
	}
	// The old day's count was dropped.
	if _, closer, err := db.Get(quotaKey(a, uint32(day.Unix()/86400))); err == nil {
		closer.Close()
		t.Fatal("yesterday's count is still stored")
	}
}

// TestQuotaCountsBlobsAndMinimumSize: small blobs are billed at the
// minimum size, and the number of grants per day is bounded whatever
// their size.
func TestQuotaCountsBlobsAndMinimumSize(t *testing.T) {
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	day := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	a := [16]byte{1}

	// 1,000 bytes a day, each blob billed at least 100: ten 1-byte blobs.
	q := NewQuota(db, QuotaConfig{Bytes: 1000, Blobs: 50, MinBilled: 100})
	for i := range 10 {
		if err := q.Reserve(ctx, a, 1, day); err != nil {
			t.Fatalf("blob %d: %v", i, err)
		}
	}
	if err := q.Reserve(ctx, a, 1, day); !errors.Is(err, ErrQuota) {
		t.Fatalf("11th 1-byte blob: %v, want ErrQuota", err)
	}

	// 20 blobs a day, however small and however much byte quota is left.
	b := [16]byte{2}
	q = NewQuota(db, QuotaConfig{Bytes: 1 << 30, Blobs: 20, MinBilled: 1})
	for i := range 20 {
		if err := q.Reserve(ctx, b, 1, day); err != nil {
			t.Fatalf("blob %d: %v", i, err)
		}
	}
	if err := q.Reserve(ctx, b, 1, day); !errors.Is(err, ErrQuota) {
		t.Fatalf("21st blob: %v, want ErrQuota", err)
	}
	if err := q.Reserve(ctx, b, 1, day.Add(24*time.Hour)); err != nil {
		t.Fatalf("the next day: %v", err)
	}
	if got := NewQuota(db, QuotaConfig{}).Billed(1); got != DefaultMinBilledBytes {
		t.Fatalf("default billed size of 1 byte = %d", got)
	}
}
