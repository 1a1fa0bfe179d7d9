package relay_test

import (
	"bytes"
	"crypto/rand"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pigeonhole/pigeonhole/blobs"
	"github.com/pigeonhole/pigeonhole/queue"
	"github.com/pigeonhole/pigeonhole/relay"
	"github.com/pigeonhole/pigeonhole/spec"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startMediaRelay starts a relay with a directory blob store served over
// HTTPS on the relay's own address (TCP), as pigeonhole serve does, with a
// daily quota of quota bytes (the other quota settings at their defaults).
func startMediaRelay(t *testing.T, cfg relay.Config, quota int64) (*testRelay, *syncBuffer) {
	t.Helper()
	return startMediaRelayQuota(t, cfg, blobs.QuotaConfig{Bytes: quota})
}

// startMediaRelayQuota is startMediaRelay with every quota setting.
func startMediaRelayQuota(t *testing.T, cfg relay.Config, quota blobs.QuotaConfig) (*testRelay, *syncBuffer) {
	t.Helper()
	dir := t.TempDir()
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var store *blobs.Dir
	r := startRelaySetup(t, cfg, queue.Config{}, dir, "127.0.0.1:0", log, func(srv *relay.Server, db *pebble.DB, _ *prometheus.Registry) {
		key := make([]byte, 32)
		rand.Read(key)
		var err error
		if store, err = blobs.NewDir(blobs.DirConfig{Path: dir + "/blobs", Key: key}); err != nil {
			t.Fatal(err)
		}
		srv.UseBlobs(store, blobs.NewQuota(db, quota))
	})
	cert, err := relay.LoadOrCreateCertificate(dir)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := relay.ServeHTTPS(r.opts.Addr, cert, store.Handler(), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hs.Close(); store.Close() })
	return r, logs
}

func TestMediaThroughDirStore(t *testing.T) {
	cfg := testConfig()
	cfg.MaxBlobBytes = 2 << 20
	r, logs := startMediaRelay(t, cfg, 3<<20)
	alice, bob := r.register(t, 1), r.register(t, 1)
	ac, bc := r.session(t, alice, 0), r.session(t, bob, 0)

	data := make([]byte, 1<<20)
	rand.Read(data)
	id, err := ac.UploadBlob(ctxT(t), bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	body, n, err := bc.DownloadBlob(ctxT(t), id)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(body)
	body.Close()
	if n != int64(len(data)) || !bytes.Equal(got, data) {
		t.Fatalf("downloaded %d bytes (%d announced)", len(got), n)
	}
	// A body longer than granted is refused by storage.
	if _, err := ac.UploadBlob(ctxT(t), io.MultiReader(bytes.NewReader(data), bytes.NewReader([]byte{1})), 100); err == nil {
		t.Fatal("a body over the granted size was stored")
	}
	_, err = ac.UploadGrant(ctxT(t), 3<<20)
	wantCode(t, err, spec.CodeBlobTooLarge)
	_, err = ac.UploadGrant(ctxT(t), 0)
	wantCode(t, err, spec.CodeBlobTooLarge)
	// 1 MiB + 100 bytes (billed as 64 KiB) used of 3 MiB: 2 MiB more is over the quota.
	_, err = ac.UploadGrant(ctxT(t), 2<<20)
	wantCode(t, err, spec.CodeBlobQuota)
	if _, err := bc.UploadGrant(ctxT(t), 2<<20); err != nil {
		t.Fatalf("another account's quota: %v", err)
	}
	_, err = bc.DownloadGrant(ctxT(t), "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	wantCode(t, err, spec.CodeUnknownBlob)
	_, err = bc.DownloadGrant(ctxT(t), "../../etc/passwd")
	wantCode(t, err, spec.CodeBadRequest)
	// Unauthenticated connections get no grants.
	_, err = r.dial(t).UploadGrant(ctxT(t), 10)
	wantCode(t, err, spec.CodeUnauthenticated)

	if out := logs.String(); strings.Contains(out, id) || strings.Contains(out, "sig=") {
		t.Fatalf("the log holds a blob id or a grant:\n%s", out)
	}
}

func TestMediaUnavailable(t *testing.T) {
	r := startRelay(t, testConfig())
	alice := r.register(t, 1)
	ac := r.session(t, alice, 0)
	_, err := ac.UploadGrant(ctxT(t), 10)
	wantCode(t, err, spec.CodeMediaUnavailable)
}

// TestMediaQuotaSmallBlobs: a flood of 1-byte uploads is bounded by the
// blob count and the minimum billed size, not only by bytes (each tiny
// blob costs the store a file and a disk block). Before, 7,864 one-byte
// blobs in 15 s all fit in a 1 GiB byte quota.
func TestMediaQuotaSmallBlobs(t *testing.T) {
	// Bytes for 40 blobs at the minimum billed size; blobs capped at 25.
	quota := blobs.QuotaConfig{Bytes: 40 * blobs.DefaultMinBilledBytes, Blobs: 25}
	r, _ := startMediaRelayQuota(t, testConfig(), quota)
	alice, bob := r.register(t, 1), r.register(t, 1)
	ac, bc := r.session(t, alice, 0), r.session(t, bob, 0)

	for i := range 25 {
		if _, err := ac.UploadBlob(ctxT(t), bytes.NewReader([]byte{byte(i)}), 1); err != nil {
			t.Fatalf("1-byte blob %d: %v", i, err)
		}
	}
	_, err := ac.UploadGrant(ctxT(t), 1)
	if e := wantCode(t, err, spec.CodeBlobQuota); e.RetryAfterMillis == 0 || e.RetryAfterMillis > 24*3600*1000 {
		t.Fatalf("BLOB_QUOTA with retry_after_ms %d, want the time to the next UTC day", e.RetryAfterMillis)
	}

	// The minimum billed size: 40 minimum-size blobs fill the bytes, so
	// after 39 tiny ones a blob of 2 minimum sizes no longer fits.
	quota.Blobs = 1000
	r2, _ := startMediaRelayQuota(t, testConfig(), quota)
	carol := r2.register(t, 1)
	cc := r2.session(t, carol, 0)
	for i := range 39 {
		if _, err := cc.UploadGrant(ctxT(t), 1); err != nil {
			t.Fatalf("grant %d: %v", i, err)
		}
	}
	_, err = cc.UploadGrant(ctxT(t), 2*blobs.DefaultMinBilledBytes)
	wantCode(t, err, spec.CodeBlobQuota)
	if _, err := cc.UploadGrant(ctxT(t), 1); err != nil {
		t.Fatalf("the 40th minimum-size grant: %v", err)
	}
	_, err = cc.UploadGrant(ctxT(t), 1)
	wantCode(t, err, spec.CodeBlobQuota)

	// Another account has its own allowance.
	if _, err := bc.UploadGrant(ctxT(t), 1); err != nil {
		t.Fatalf("another account: %v", err)
	}
}
