package relay_test

import (
	"bytes"
	"crypto/tls"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/pigeonhole/pigeonhole/blobs"
	"github.com/pigeonhole/pigeonhole/relay/client"
)

// blobHTTP makes a grant's request with contentType in place of the
// grant's own (none if empty), as a hostile client would, and returns
// the response (body closed). A path is sent to the relay's own HTTPS;
// the certificate is not checked, as a test on 127.0.0.1.
func blobHTTP(t *testing.T, r *testRelay, g *client.BlobGrant, contentType string, body []byte) *http.Response {
	t.Helper()
	url := g.URL
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	t.Cleanup(hc.CloseIdleConnections)
	if strings.HasPrefix(url, "/") {
		url = "https://" + r.opts.Addr + url
	}
	req, err := http.NewRequestWithContext(ctxT(t), g.Method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range g.Header {
		req.Header.Set(k, v)
	}
	req.Header.Del("Content-Type")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if cl := req.Header.Get("Content-Length"); cl != "" {
		if req.ContentLength, err = strconv.ParseInt(cl, 10, 64); err != nil {
			t.Fatal(err)
		}
		req.Header.Del("Content-Length")
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// testMediaContentType: an upload grant used with Content-Type text/html
// is refused by storage, and a blob is served as opaque bytes. Before, a
// presigned S3 PUT accepted text/html and MinIO served the blob back as
// an HTML page from the store's origin.
func testMediaContentType(t *testing.T, r *testRelay, refused int) {
	alice, bob := r.register(t, 1), r.register(t, 1)
	ac, bc := r.session(t, alice, 0), r.session(t, bob, 0)
	page := []byte("<html><script>alert(document.domain)</script></html>")
	g, err := ac.UploadGrant(ctxT(t), int64(len(page)))
	if err != nil {
		t.Fatal(err)
	}
	if resp := blobHTTP(t, r, g, "text/html", page); resp.StatusCode != refused {
		t.Fatalf("upload as text/html: %s, want %d", resp.Status, refused)
	}
	if _, err := bc.DownloadGrant(ctxT(t), g.BlobID); err == nil {
		t.Fatal("a refused upload was stored")
	}
	if resp := blobHTTP(t, r, g, blobs.ContentType, page); resp.StatusCode != http.StatusOK {
		t.Fatalf("upload as %s: %s", blobs.ContentType, resp.Status)
	}
	dg, err := bc.DownloadGrant(ctxT(t), g.BlobID)
	if err != nil {
		t.Fatal(err)
	}
	resp := blobHTTP(t, r, dg, "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("download: %s", resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != blobs.ContentType {
		t.Fatalf("blob served as %q, want %q", ct, blobs.ContentType)
	}
	if v := resp.Header.Get("X-Content-Type-Options"); v != "nosniff" {
		t.Errorf("blob served with X-Content-Type-Options %q, want nosniff", v)
	}
}

func TestMediaContentTypeS3(t *testing.T) {
	testMediaContentType(t, startS3Relay(t, testConfig()), http.StatusForbidden)
}

func TestMediaContentTypeDir(t *testing.T) {
	r, _ := startMediaRelay(t, testConfig(), 1<<30)
	testMediaContentType(t, r, http.StatusUnsupportedMediaType)
}
