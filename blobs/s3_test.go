package blobs

import (
	"bytes"
	"context"
	"errors"
	"github.com/pigeonhole/pigeonhole/blobs/blobstest"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

// testConfig returns the configuration of a real S3 store (MinIO, started
// by .ci/minio) with a fresh random bucket name. It skips the test when
// PIGEONHOLE_TEST_S3_ENDPOINT is unset, except under CI=true, where a
// missing store is a failure.
func testS3Config(t *testing.T) S3Config {
	t.Helper()
	m := blobstest.MinIO(t)
	return S3Config{
		Endpoint:  m.Endpoint,
		AccessKey: m.AccessKey,
		SecretKey: m.SecretKey,
		Bucket:    blobstest.Bucket("pigeonhole-test-"),
		Lifetime:  36 * time.Hour,
	}
}

// newTestS3 connects to the test store with its own bucket, which it removes,
// contents and all, when the test ends.
func newTestS3(t *testing.T) (*S3, S3Config) {
	t.Helper()
	cfg := testS3Config(t)
	s, err := NewS3(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := s.client.RemoveBucketWithOptions(ctx, cfg.Bucket, minio.RemoveBucketOptions{ForceDelete: true})
		if err != nil {
			t.Errorf("removing bucket %s: %v", cfg.Bucket, err)
		}
	})
	return s, cfg
}

// send makes the request a grant describes with plain net/http, with a body
// of length bytes (length -1: unknown, so chunked), and returns the status
// and the response body.
func s3Send(t *testing.T, g Grant, body io.Reader, length int64) (int, []byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, g.Method, g.URL, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = g.Header.Clone()
	if body != nil {
		req.ContentLength = length
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// mustSend is send for requests that must get an answer.
func s3MustSend(t *testing.T, g Grant, body []byte) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	status, b, err := s3Send(t, g, r, int64(len(body)))
	if err != nil {
		t.Fatalf("%s %s: %v", g.Method, g.URL, err)
	}
	return status, b
}

// wantNotStored fails the test unless blob id is absent.
func s3WantNotStored(t *testing.T, s *S3, id string) {
	t.Helper()
	if n, err := s.Stat(t.Context(), id); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat(%s) = %d, %v; want ErrNotFound", id, n, err)
	}
}

func TestS3RoundTrip(t *testing.T) {
	s, _ := newTestS3(t)
	ctx := t.Context()
	data := []byte("sealed media: pretend this is ciphertext")

	s3WantNotStored(t, s, "photo1")
	up, err := s.UploadGrant(ctx, "photo1", int64(len(data)), 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if up.Method != http.MethodPut || up.Header.Get("Content-Length") != "40" {
		t.Errorf("upload grant = %+v; want PUT with Content-Length 40", up)
	}
	if d := time.Until(up.Expires); d < 9*time.Minute || d > 10*time.Minute {
		t.Errorf("upload grant expires in %v; want about 10m", d)
	}
	if status, body := s3MustSend(t, up, data); status != http.StatusOK {
		t.Fatalf("upload: %d %s", status, body)
	}
	if n, err := s.Stat(ctx, "photo1"); err != nil || n != int64(len(data)) {
		t.Fatalf("Stat = %d, %v; want %d", n, err, len(data))
	}

	down, err := s.DownloadGrant(ctx, "photo1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	status, got := s3MustSend(t, down, nil)
	if status != http.StatusOK || !bytes.Equal(got, data) {
		t.Fatalf("download: %d %q; want 200 %q", status, got, data)
	}

	if err := s.Delete(ctx, "photo1"); err != nil {
		t.Fatal(err)
	}
	s3WantNotStored(t, s, "photo1")
	if err := s.Delete(ctx, "photo1"); err != nil {
		t.Errorf("deleting a missing blob: %v", err)
	}
	if status, _ := s3MustSend(t, down, nil); status != http.StatusNotFound {
		t.Errorf("download after delete: %d; want 404", status)
	}
}

// TestS3SizeIsBound checks that MinIO itself refuses an upload whose length
// differs from the size the grant was made for.
func TestS3SizeIsBound(t *testing.T) {
	s, _ := newTestS3(t)
	const size = 1000
	for _, n := range []int64{size + 1, size - 1, 0} {
		up, err := s.UploadGrant(t.Context(), "sized", size, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		status, body := s3MustSend(t, up, make([]byte, n))
		if status != http.StatusForbidden && status != http.StatusBadRequest {
			t.Errorf("%d-byte body on a %d-byte grant: %d %s; want 403 or 400", n, size, status, body)
		}
		t.Logf("%d-byte body on a %d-byte grant: MinIO answered %d %s", n, size, status, s3ErrorCode(body))
		s3WantNotStored(t, s, "sized")
	}

	// Control: an unbound presign (minio-go's PresignedPutObject, no signed
	// Content-Length) lets the same wrong-sized body through, so it is the
	// signed header that refuses it above.
	u, err := s.client.PresignedPutObject(t.Context(), s.bucket, s3KeyPrefix+"unbound", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	unbound := Grant{Method: http.MethodPut, URL: u.String(), Header: http.Header{}}
	if status, body := s3MustSend(t, unbound, make([]byte, size+1)); status != http.StatusOK {
		t.Errorf("control: unbound presigned PUT refused: %d %s", status, body)
	}
	if n, err := s.Stat(t.Context(), "unbound"); err != nil || n != size+1 {
		t.Errorf("control: Stat(unbound) = %d, %v; want %d", n, err, size+1)
	}

	// Unknown length: net/http sends the body chunked.
	up, err := s.UploadGrant(t.Context(), "sized", size, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	status, body, err := s3Send(t, up, io.LimitReader(s3Zeros{}, size), -1)
	if err != nil || status/100 != 4 {
		t.Errorf("chunked upload: %d %s %v; want 4xx", status, body, err)
	}
	t.Logf("chunked body on a %d-byte grant: MinIO answered %d %s", size, status, s3ErrorCode(body))
	s3WantNotStored(t, s, "sized")

	// A client that announces the right length but sends less is cut off.
	_, _, err = s3Send(t, up, io.LimitReader(s3Zeros{}, size-1), size)
	if err == nil {
		t.Error("short body under a full Content-Length: no error")
	}
	s3WantNotStored(t, s, "sized")
}

// s3Zeros is an endless reader of zero bytes.
type s3Zeros struct{}

func (s3Zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// errorCode extracts the <Code> of an S3 error response, for logs.
func s3ErrorCode(body []byte) string {
	s := string(body)
	i, j := strings.Index(s, "<Code>"), strings.Index(s, "</Code>")
	if i < 0 || j < i {
		return ""
	}
	return s[i+len("<Code>") : j]
}

func TestS3TamperedURL(t *testing.T) {
	s, _ := newTestS3(t)
	ctx := t.Context()
	data := []byte("0123456789")
	up, err := s.UploadGrant(ctx, "orig", int64(len(data)), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	down, err := s.presign(ctx, http.MethodGet, "orig", time.Minute, nil, http.Header{}) // before the upload, so no Stat
	if err != nil {
		t.Fatal(err)
	}

	tampered := map[string]Grant{
		"upload signature":   s3WithURL(up, s3FlipSig(up.URL)),
		"upload object key":  s3WithURL(up, strings.Replace(up.URL, "/b/orig?", "/b/other?", 1)),
		"upload expiry":      s3WithURL(up, strings.Replace(up.URL, "X-Amz-Expires=60", "X-Amz-Expires=600", 1)),
		"upload header list": s3WithURL(up, strings.Replace(up.URL, "content-length%3Bcontent-type%3Bhost", "host", 1)),
	}
	for name, g := range tampered {
		if g.URL == up.URL {
			t.Fatalf("%s: tampering changed nothing in %s", name, up.URL)
		}
		if status, body := s3MustSend(t, g, data); status != http.StatusForbidden {
			t.Errorf("%s tampered: %d %s; want 403", name, status, body)
		}
	}
	s3WantNotStored(t, s, "orig")
	s3WantNotStored(t, s, "other")

	if status, body := s3MustSend(t, up, data); status != http.StatusOK {
		t.Fatalf("untampered upload: %d %s", status, body)
	}
	bad := s3WithURL(down, s3FlipSig(down.URL))
	if status, body := s3MustSend(t, bad, nil); status != http.StatusForbidden {
		t.Errorf("download with tampered signature: %d %s; want 403", status, body)
	}
}

// withURL returns g with its URL replaced.
func s3WithURL(g Grant, u string) Grant {
	g.URL = u
	return g
}

// flipLastSigDigit changes the last hex digit of a presigned URL's
// X-Amz-Signature, which minio-go puts last.
func s3FlipSig(u string) string {
	last := u[len(u)-1]
	if last == '0' {
		return u[:len(u)-1] + "1"
	}
	return u[:len(u)-1] + "0"
}

func TestS3BadTTL(t *testing.T) {
	s, _ := newTestS3(t)
	for _, ttl := range []time.Duration{0, 999 * time.Millisecond, 8 * 24 * time.Hour} {
		if _, err := s.DownloadGrant(t.Context(), "x", ttl); err == nil {
			t.Errorf("DownloadGrant with ttl %v: no error", ttl)
		}
	}
}

func TestS3NoBucket(t *testing.T) {
	cfg := testS3Config(t)
	cfg.Bucket = "Not_A_Bucket"
	_, err := NewS3(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), "blobs: bucket Not_A_Bucket") {
		t.Errorf("NewS3 with a bad bucket name: %v", err)
	}
}

func TestS3DownloadGrantForMissingBlob(t *testing.T) {
	s, _ := newTestS3(t)
	if _, err := s.DownloadGrant(t.Context(), "never-uploaded", time.Minute); !errors.Is(err, ErrNotFound) {
		t.Fatalf("DownloadGrant of a missing blob: %v, want ErrNotFound", err)
	}
}
