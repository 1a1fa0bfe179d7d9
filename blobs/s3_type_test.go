package blobs

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

// TestS3GrantPinsContentType: the content type is among an upload grant's
// signed headers, so MinIO refuses an upload as text/html (which it would
// otherwise store and serve back as HTML, from the store's origin), and a
// download grant fixes the response's type whatever the object's
// metadata says.
func TestS3GrantPinsContentType(t *testing.T) {
	s, cfg := newTestS3(t)
	ctx := t.Context()
	page := []byte("<html><script>alert(document.domain)</script></html>")

	up, err := s.UploadGrant(ctx, "page", int64(len(page)), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if got := up.Header.Get("Content-Type"); got != ContentType {
		t.Fatalf("upload grant's Content-Type = %q, want %q", got, ContentType)
	}
	for _, ct := range []string{"text/html", "image/svg+xml", ""} {
		g := up
		g.Header = up.Header.Clone()
		if ct == "" {
			g.Header.Del("Content-Type")
		} else {
			g.Header.Set("Content-Type", ct)
		}
		// Another type is a signature mismatch (403); none at all, a
		// signed header missing (MinIO says 400).
		status, body := s3MustSend(t, g, page)
		if (ct != "" && status != http.StatusForbidden) || status/100 != 4 {
			t.Fatalf("upload as %q: %d %s, want it refused (403)", ct, status, body)
		}
		s3WantNotStored(t, s, "page")
	}
	if status, body := s3MustSend(t, up, page); status != http.StatusOK {
		t.Fatalf("upload as granted: %d %s", status, body)
	}

	// An object stored with text/html (as a grant before this fix
	// allowed) is still served as opaque bytes through a download grant.
	if _, err := s.client.PutObject(ctx, cfg.Bucket, s3KeyPrefix+"legacy", bytes.NewReader(page), int64(len(page)),
		minio.PutObjectOptions{ContentType: "text/html"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"page", "legacy"} {
		down, err := s.DownloadGrant(ctx, id, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		req, err := http.NewRequestWithContext(ctx, down.Method, down.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("download %s: %d", id, resp.StatusCode)
		}
		if got := resp.Header.Get("Content-Type"); got != ContentType {
			t.Errorf("download %s served as %q, want %q", id, got, ContentType)
		}
		if got := resp.Header.Get("Content-Disposition"); got != "attachment" {
			t.Errorf("download %s: Content-Disposition %q, want attachment", id, got)
		}
		t.Logf("download %s: X-Content-Type-Options %q", id, resp.Header.Get("X-Content-Type-Options"))
	}
}
