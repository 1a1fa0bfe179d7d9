package blobs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"
)

// s3HeapPeak tracks the largest HeapInuse seen, sampling every step bytes
// of traffic (ReadMemStats stops the world, so not on every Read). The
// HTTP transport reads request bodies on its own goroutine, hence the lock.
type s3HeapPeak struct {
	mu          sync.Mutex
	step, since uint64
	peak        uint64
}

// saw records n more bytes of traffic, sampling the heap when due.
func (h *s3HeapPeak) saw(n int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.since += uint64(n)
	if h.since < h.step {
		return
	}
	h.since = 0
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	h.peak = max(h.peak, m.HeapInuse)
}

// s3Metered passes reads through to r, reporting them to h.
type s3Metered struct {
	r io.Reader
	h *s3HeapPeak
}

func (m s3Metered) Read(p []byte) (int, error) {
	n, err := m.r.Read(p)
	m.h.saw(n)
	return n, err
}

// TestS3LargeBlobStreams sends 50 MiB from a deterministic generator
// through an upload grant and back through a download grant, and checks
// that neither side ever held the blob in memory.
func TestS3LargeBlobStreams(t *testing.T) {
	s, _ := newTestS3(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	const size = 50 << 20

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	peak := &s3HeapPeak{step: 4 << 20, peak: before.HeapInuse}

	up, err := s.UploadGrant(ctx, "big", size, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	sent := sha256.New()
	gen := io.LimitReader(rand.NewChaCha8([32]byte{'p', 'i', 'g', 'e', 'o', 'n'}), size)
	req, err := http.NewRequestWithContext(ctx, up.Method, up.URL, s3Metered{io.TeeReader(gen, sent), peak})
	if err != nil {
		t.Fatal(err)
	}
	req.Header = up.Header.Clone()
	req.ContentLength = size
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("upload: %d %s", resp.StatusCode, body)
	}
	if n, err := s.Stat(ctx, "big"); err != nil || n != size {
		t.Fatalf("Stat = %d, %v; want %d", n, err, size)
	}

	down, err := s.DownloadGrant(ctx, "big", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	req, err = http.NewRequestWithContext(ctx, down.Method, down.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("download: %d", resp.StatusCode)
	}
	got := sha256.New()
	n, err := io.Copy(got, s3Metered{resp.Body, peak})
	if err != nil || n != size {
		t.Fatalf("download: %d bytes, %v; want %d", n, err, size)
	}
	if !bytes.Equal(got.Sum(nil), sent.Sum(nil)) {
		t.Fatal("downloaded bytes differ from those uploaded")
	}

	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	peak.mu.Lock()
	top := max(peak.peak, after.HeapInuse)
	peak.mu.Unlock()
	allocated := after.TotalAlloc - before.TotalAlloc
	growth := int64(top) - int64(before.HeapInuse)
	t.Logf("50 MiB up and down: %.2f MiB allocated in all, heap in use peaked %.2f MiB above the start",
		float64(allocated)/(1<<20), float64(growth)/(1<<20))
	const limit = 8 << 20
	if allocated > limit || growth > limit {
		t.Errorf("memory grew too much for a streamed %d-byte blob: allocated %d, heap growth %d; want both under %d",
			size, allocated, growth, limit)
	}
}
