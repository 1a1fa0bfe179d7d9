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
	q := NewQuota(db, 100)
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
