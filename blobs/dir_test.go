package blobs

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

func newDir(t *testing.T) (*Dir, *httptest.Server) {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	mux := http.NewServeMux()
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	d, err := NewDir(DirConfig{Path: t.TempDir(), BaseURL: srv.URL, Key: key, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	mux.Handle("/blobs/", d.Handler())
	return d, srv
}

func do(t *testing.T, c *http.Client, g Grant, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(g.Method, g.URL, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range g.Header {
		req.Header[k] = v
	}
	if cl := g.Header.Get("Content-Length"); cl != "" {
		n, err := strconv.ParseInt(cl, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = n
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestDirRoundTripAndRefusals(t *testing.T) {
	d, srv := newDir(t)
	c := srv.Client()
	ctx := context.Background()
	data := make([]byte, 100_000)
	rand.Read(data)

	up, err := d.UploadGrant(ctx, "blob1", int64(len(data)), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// Too long and too short bodies are refused and store nothing.
	for _, body := range [][]byte{append(bytes.Clone(data), 0), data[:len(data)-1]} {
		req, _ := http.NewRequest(up.Method, up.URL, bytes.NewReader(body))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("a %d-byte body got %d", len(body), resp.StatusCode)
		}
		if _, err := d.Stat(ctx, "blob1"); err != ErrNotFound {
			t.Fatalf("stored after a refused upload: %v", err)
		}
	}
	// A tampered size or id is refused.
	for _, u := range []string{strings.Replace(up.URL, "size=100000", "size=200000", 1), strings.Replace(up.URL, "blob1", "blob2", 1)} {
		resp, _ := do(t, c, Grant{Method: "PUT", URL: u, Header: up.Header}, bytes.NewReader(data))
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("tampered grant got %d", resp.StatusCode)
		}
	}
	if resp, _ := do(t, c, up, bytes.NewReader(data)); resp.StatusCode != http.StatusOK {
		t.Fatalf("upload: %d", resp.StatusCode)
	}
	if resp, _ := do(t, c, up, bytes.NewReader(data)); resp.StatusCode != http.StatusConflict {
		t.Fatalf("second upload: %d", resp.StatusCode)
	}
	if n, err := d.Stat(ctx, "blob1"); err != nil || n != int64(len(data)) {
		t.Fatalf("stat = %d, %v", n, err)
	}
	down, err := d.DownloadGrant(ctx, "blob1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	resp, got := do(t, c, down, nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, data) {
		t.Fatalf("download: %d, %d bytes", resp.StatusCode, len(got))
	}
	// A GET grant does not work as a PUT, and expired grants are refused.
	if resp, _ := do(t, c, Grant{Method: "PUT", URL: down.URL, Header: up.Header}, bytes.NewReader(data)); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("GET grant used for PUT: %d", resp.StatusCode)
	}
	d.now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	if resp, _ := do(t, c, down, nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("expired grant: %d", resp.StatusCode)
	}
	// After the lifetime the blob is gone.
	d.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if _, err := d.DownloadGrant(ctx, "blob1", time.Minute); err != ErrNotFound {
		t.Fatalf("expired blob: %v", err)
	}
	if n, err := d.Expire(ctx); err != nil || n != 1 {
		t.Fatalf("expire = %d, %v", n, err)
	}
	if _, err := d.UploadGrant(ctx, "../etc/passwd", 1, time.Minute); err == nil {
		t.Fatal("a path as blob id was accepted")
	}
}

// pattern is a deterministic stream of n bytes, so a large blob needs no
// buffer of its size.
type pattern struct{ n, off int64 }

func (p *pattern) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), p.n-p.off)]
	for i := range b {
		b[i] = byte((p.off + int64(i)) * 2654435761 >> 13)
	}
	p.off += int64(len(b))
	return len(b), nil
}

// TestDirLargeBlobBoundedMemory sends 50 MiB up and down through the
// grants and checks the process's heap does not grow with the blob.
func TestDirLargeBlobBoundedMemory(t *testing.T) {
	d, srv := newDir(t)
	c := srv.Client()
	const size = 50 << 20
	up, err := d.UploadGrant(context.Background(), "large", size, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	req, _ := http.NewRequest(up.Method, up.URL, &pattern{n: size})
	req.ContentLength = size
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("upload: %d", resp.StatusCode)
	}
	down, err := d.DownloadGrant(context.Background(), "large", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	resp, err = c.Get(down.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	want := &pattern{n: size}
	buf, wbuf := make([]byte, 64<<10), make([]byte, 64<<10)
	var total int64
	for {
		n, err := io.ReadFull(resp.Body, buf)
		if n > 0 {
			if _, werr := io.ReadFull(want, wbuf[:n]); werr != nil || !bytes.Equal(buf[:n], wbuf[:n]) {
				t.Fatalf("content differs near byte %d", total)
			}
			total += int64(n)
		}
		if err != nil {
			break
		}
	}
	if total != size {
		t.Fatalf("downloaded %d bytes", total)
	}
	runtime.ReadMemStats(&after)
	peak := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("50 MiB up and down: heap in use grew %d KiB, %d KiB allocated in all", peak>>10, (after.TotalAlloc-before.TotalAlloc)>>10)
	if peak > 8<<20 {
		t.Fatalf("heap grew %d MiB for a 50 MiB blob", peak>>20)
	}
}

// TestDirContentType: the directory store refuses an upload that names
// another content type (415) and serves a blob as opaque bytes: octet-
// stream, nosniff, an attachment.
func TestDirContentType(t *testing.T) {
	d, srv := newDir(t)
	c := srv.Client()
	ctx := context.Background()
	page := []byte("<html><script>alert(1)</script></html>")
	up, err := d.UploadGrant(ctx, "page", int64(len(page)), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if got := up.Header.Get("Content-Type"); got != ContentType {
		t.Fatalf("upload grant's Content-Type = %q", got)
	}
	html := Grant{Method: up.Method, URL: up.URL, Header: up.Header.Clone()}
	html.Header.Set("Content-Type", "text/html")
	if resp, _ := do(t, c, html, bytes.NewReader(page)); resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("upload as text/html: %d, want 415", resp.StatusCode)
	}
	if _, err := d.Stat(ctx, "page"); err != ErrNotFound {
		t.Fatalf("stored after a refused upload: %v", err)
	}
	if resp, _ := do(t, c, up, bytes.NewReader(page)); resp.StatusCode != http.StatusOK {
		t.Fatalf("upload: %d", resp.StatusCode)
	}
	down, err := d.DownloadGrant(ctx, "page", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	resp, got := do(t, c, down, nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, page) {
		t.Fatalf("download: %d", resp.StatusCode)
	}
	for k, want := range map[string]string{
		"Content-Type":           ContentType,
		"X-Content-Type-Options": "nosniff",
		"Content-Disposition":    "attachment",
	} {
		if v := resp.Header.Get(k); v != want {
			t.Errorf("download %s: %q, want %q", k, v, want)
		}
	}
}
