package blobs

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// These need no store: ids and sizes are checked before any request.

func TestS3InvalidIDs(t *testing.T) {
	s := &S3{} // no client: a call that got past validation would panic
	ctx := context.Background()
	bad := []string{"", strings.Repeat("a", 65), "a/b", "../x", "a b", "a.b", "é", "a\n", "x?y", "%2F"}
	for _, id := range bad {
		if _, err := s.UploadGrant(ctx, id, 1, time.Minute); !errors.Is(err, ErrInvalidID) {
			t.Errorf("UploadGrant(%q): %v; want ErrInvalidID", id, err)
		}
		if _, err := s.DownloadGrant(ctx, id, time.Minute); err == nil {
			t.Errorf("DownloadGrant(%q): no error", id)
		}
		if _, err := s.Stat(ctx, id); err == nil {
			t.Errorf("Stat(%q): no error", id)
		}
		if err := s.Delete(ctx, id); err == nil {
			t.Errorf("Delete(%q): no error", id)
		}
	}
	for _, id := range []string{"a", strings.Repeat("Z", 64), "A-z_0-9"} {
		if err := checkID(id); err != nil {
			t.Errorf("checkID(%q): %v", id, err)
		}
	}
}

func TestS3UploadSizeRange(t *testing.T) {
	s := &S3{}
	for _, size := range []int64{-1, 0, maxS3PutSize + 1} {
		if _, err := s.UploadGrant(context.Background(), "ok", size, time.Minute); err == nil {
			t.Errorf("UploadGrant of %d bytes: no error", size)
		}
	}
}

func TestS3LifetimeDays(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		days int
	}{
		{time.Nanosecond, 1},
		{24 * time.Hour, 1},
		{24*time.Hour + time.Second, 2},
		{36 * time.Hour, 2},
		{defaultS3Lifetime, 30},
	} {
		if got := lifetimeDays(c.d); got != c.days {
			t.Errorf("lifetimeDays(%v) = %d; want %d", c.d, got, c.days)
		}
	}
}
