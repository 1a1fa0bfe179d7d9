package relay_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"log/slog"
	"os"
	"runtime"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pigeonhole/pigeonhole/blobs"
	"github.com/pigeonhole/pigeonhole/queue"
	"github.com/pigeonhole/pigeonhole/relay"
	"github.com/pigeonhole/pigeonhole/relay/client/media"
)

// startS3Relay starts a relay whose media go to the MinIO named by the
// PIGEONHOLE_TEST_S3_* variables (.ci/minio starts one), in a fresh
// bucket. Without them it skips, except under CI=true, where it fails.
func startS3Relay(t *testing.T, cfg relay.Config) *testRelay {
	t.Helper()
	ep := os.Getenv("PIGEONHOLE_TEST_S3_ENDPOINT")
	if ep == "" {
		const how = `start one with: eval "$(bash .ci/minio)"`
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but PIGEONHOLE_TEST_S3_ENDPOINT is unset: " + how)
		}
		t.Skip("no MinIO to test against (PIGEONHOLE_TEST_S3_ENDPOINT is unset); " + how)
	}
	var b [6]byte
	rand.Read(b[:])
	s3, err := blobs.NewS3(context.Background(), blobs.S3Config{
		Endpoint: ep, Bucket: "relay-test-" + hex.EncodeToString(b[:]),
		AccessKey: os.Getenv("PIGEONHOLE_TEST_S3_ACCESS_KEY"), SecretKey: os.Getenv("PIGEONHOLE_TEST_S3_SECRET_KEY"),
	})
	if err != nil {
		t.Fatal(err)
	}
	return startRelaySetup(t, cfg, queue.Config{}, t.TempDir(), "127.0.0.1:0", slog.New(slog.DiscardHandler),
		func(srv *relay.Server, db *pebble.DB, _ *prometheus.Registry) {
			srv.UseBlobs(s3, blobs.NewQuota(db, 1<<30))
		})
}

// pattern is n deterministic bytes, streamed.
type pattern struct{ n, off int64 }

func (p *pattern) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), p.n-p.off)]
	for i := range b {
		b[i] = byte((p.off + int64(i)) * 2654435761 >> 11)
	}
	p.off += int64(len(b))
	return len(b), nil
}

// sendLargeFile encrypts 50 MiB as pigeon send-file does, uploads it,
// downloads it as the recipient, decrypts and compares, all streaming, and
// reports the bytes the test process allocated along the way.
func sendLargeFile(t *testing.T, r *testRelay) {
	const size = 50 << 20
	alice, bob := r.register(t, 1), r.register(t, 1)
	ac, bc := r.session(t, alice, 0), r.session(t, bob, 0)
	key, err := media.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)

	pr, pw := io.Pipe()
	digestc := make(chan []byte, 1)
	go func() {
		d, err := media.Encrypt(pw, &pattern{n: size}, size, key)
		digestc <- d
		pw.CloseWithError(err)
	}()
	id, err := ac.UploadBlob(ctxT(t), pr, media.CiphertextSize(size))
	digest := <-digestc
	if err != nil {
		t.Fatal(err)
	}
	body, _, err := bc.DownloadBlob(ctxT(t), id)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	got := sha256.New()
	if err := media.Decrypt(got, body, size, key, digest); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	want := sha256.New()
	io.Copy(want, &pattern{n: size})
	if !equalHash(got, want) {
		t.Fatal("the decrypted file differs")
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("50 MiB encrypted, uploaded, downloaded, decrypted: %d KiB allocated in all, heap in use %+d KiB", alloc>>10, (int64(after.HeapInuse)-int64(before.HeapInuse))>>10)
	if alloc > 16<<20 {
		t.Fatalf("allocated %d MiB for a 50 MiB file", alloc>>20)
	}
}

func equalHash(a, b hash.Hash) bool { return string(a.Sum(nil)) == string(b.Sum(nil)) }

func TestLargeFileThroughDirStore(t *testing.T) {
	r, _ := startMediaRelay(t, testConfig(), 1<<30)
	sendLargeFile(t, r)
}

func TestLargeFileThroughS3(t *testing.T) {
	sendLargeFile(t, startS3Relay(t, testConfig()))
}
