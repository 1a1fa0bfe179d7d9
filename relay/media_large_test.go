package relay_test

import (
	"context"
	"crypto/sha256"
	"hash"
	"io"
	"log/slog"
	"runtime"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pigeonhole/pigeonhole/blobs"
	"github.com/pigeonhole/pigeonhole/blobs/blobstest"
	"github.com/pigeonhole/pigeonhole/queue"
	"github.com/pigeonhole/pigeonhole/relay"
	"github.com/pigeonhole/pigeonhole/relay/client/media"
)

// startS3Relay starts a relay whose media go to the MinIO named by the
// PIGEONHOLE_TEST_S3_* variables (.ci/minio starts one), in a fresh
// bucket. Without them it skips, except under CI=true, where it fails.
func startS3Relay(t *testing.T, cfg relay.Config) *testRelay {
	t.Helper()
	m := blobstest.MinIO(t)
	s3, err := blobs.NewS3(context.Background(), blobs.S3Config{
		Endpoint: m.Endpoint, Bucket: blobstest.Bucket("relay-test-"), AccessKey: m.AccessKey, SecretKey: m.SecretKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	return startRelaySetup(t, cfg, queue.Config{}, t.TempDir(), "127.0.0.1:0", slog.New(slog.DiscardHandler),
		func(srv *relay.Server, db *pebble.DB, _ *prometheus.Registry) {
			srv.UseBlobs(s3, blobs.NewQuota(db, blobs.QuotaConfig{}))
		})
}

// pattern is n deterministic bytes, streamed. With sample set, it calls
// it every 4 MiB (to sample the heap as the data flows).
type pattern struct {
	n, off int64
	sample func()
}

func (p *pattern) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	if p.sample != nil && p.off%(4<<20) < int64(len(b)) {
		p.sample()
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
	var before, after, now runtime.MemStats
	runtime.ReadMemStats(&before)
	var peak uint64 // the most heap in use seen while the file flowed
	sample := func() {
		runtime.ReadMemStats(&now)
		peak = max(peak, now.HeapInuse)
	}

	pr, pw := io.Pipe()
	digestc := make(chan []byte, 1)
	go func() {
		d, err := media.Encrypt(pw, &pattern{n: size, sample: sample}, size, key)
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
	if err := media.Decrypt(&sampler{w: got, sample: sample}, body, size, key, digest); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	peak = max(peak, after.HeapInuse)
	want := sha256.New()
	io.Copy(want, &pattern{n: size})
	if !equalHash(got, want) {
		t.Fatal("the decrypted file differs")
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	growth := int64(peak) - int64(before.HeapInuse)
	t.Logf("50 MiB encrypted, uploaded, downloaded, decrypted: heap in use at most %+d KiB over the start; %d KiB allocated in all", growth>>10, alloc>>10)
	// The relay and the client share this process: both must stream.
	if growth > 24<<20 {
		t.Fatalf("heap in use grew %d MiB for a 50 MiB file", growth>>20)
	}
}

// sampler calls sample every 4 MiB written through it.
type sampler struct {
	w      io.Writer
	n      int64
	sample func()
}

func (s *sampler) Write(p []byte) (int, error) {
	if s.n%(4<<20)+int64(len(p)) >= 4<<20 {
		s.sample()
	}
	s.n += int64(len(p))
	return s.w.Write(p)
}

func equalHash(a, b hash.Hash) bool { return string(a.Sum(nil)) == string(b.Sum(nil)) }

func TestLargeFileThroughDirStore(t *testing.T) {
	r, _ := startMediaRelay(t, testConfig(), 1<<30)
	sendLargeFile(t, r)
}

func TestLargeFileThroughS3(t *testing.T) {
	sendLargeFile(t, startS3Relay(t, testConfig()))
}
