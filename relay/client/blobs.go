package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pigeonhole/pigeonhole/spec"
)

// BlobGrant is the relay's permission to upload or download one blob: an
// HTTP request to make directly to storage.
type BlobGrant struct {
	BlobID  string
	Method  string
	URL     string // absolute, or a path on the relay (HTTPS over TCP, pinned)
	Header  map[string]string
	Expires time.Time
}

func fromSpecGrant(g *spec.BlobGrant) (*BlobGrant, error) {
	if g == nil || g.BlobId == "" || g.Url == "" {
		return nil, errors.New("malformed grant")
	}
	return &BlobGrant{BlobID: g.BlobId, Method: g.Method, URL: g.Url, Header: g.Headers, Expires: time.UnixMilli(g.ExpiresMs)}, nil
}

// UploadGrant asks for a grant to upload size bytes of ciphertext.
func (c *Conn) UploadGrant(ctx context.Context, size int64) (*BlobGrant, error) {
	resp, err := c.roundTrip(ctx, &spec.Request{Body: &spec.Request_UploadGrant{UploadGrant: &spec.UploadGrantRequest{Size: uint64(size)}}})
	if err != nil {
		return nil, fmt.Errorf("upload grant: %w", err)
	}
	g, err := fromSpecGrant(resp.GetUploadGrant().GetGrant())
	if err != nil {
		return nil, fmt.Errorf("upload grant: %w", err)
	}
	return g, nil
}

// DownloadGrant asks for a grant to download a blob.
func (c *Conn) DownloadGrant(ctx context.Context, blobID string) (*BlobGrant, error) {
	resp, err := c.roundTrip(ctx, &spec.Request{Body: &spec.Request_DownloadGrant{DownloadGrant: &spec.DownloadGrantRequest{BlobId: blobID}}})
	if err != nil {
		return nil, fmt.Errorf("download grant: %w", err)
	}
	g, err := fromSpecGrant(resp.GetDownloadGrant().GetGrant())
	if err != nil {
		return nil, fmt.Errorf("download grant: %w", err)
	}
	return g, nil
}

// blobClients are the HTTP clients a connection uses for grants, made on
// first use and closed with the connection: one for the relay's own HTTPS
// (certificate pinned like the QUIC connection), one for storage
// elsewhere.
type blobClients struct {
	once          sync.Once
	relay, remote *http.Client
	err           error
}

func (c *Conn) blobHTTP() (relay, remote *http.Client, err error) {
	b := &c.blobs
	b.once.Do(func() {
		conf, err := clientTLS(&c.opts)
		if err != nil {
			b.err = err
			return
		}
		conf.NextProtos = []string{"h2", "http/1.1"}
		rt := http.DefaultTransport.(*http.Transport).Clone()
		rt.TLSClientConfig = conf
		rt.IdleConnTimeout = 30 * time.Second
		b.relay = &http.Client{Transport: rt}
		ext := http.DefaultTransport.(*http.Transport).Clone()
		ext.IdleConnTimeout = 30 * time.Second
		b.remote = &http.Client{Transport: ext}
	})
	return b.relay, b.remote, b.err
}

func (b *blobClients) close() {
	for _, hc := range []*http.Client{b.relay, b.remote} {
		if hc != nil {
			hc.CloseIdleConnections()
		}
	}
}

// BlobError is a failed upload or download of a blob's bytes (after the
// relay granted it). Its message never holds the grant's URL, which is a
// bearer credential (a presigned S3 URL, or the relay's own with a token).
type BlobError struct {
	Op string // "upload" or "download"
	// Relay is true when the grant named the relay's own HTTPS endpoint
	// (TCP, at the relay's address: the directory store), false for
	// external storage (S3, MinIO).
	Relay bool
	// Status is the HTTP status storage answered, 0 if none came.
	Status int
	Err    error
}

func (e *BlobError) Error() string {
	where := "storage"
	if e.Relay {
		where = "the relay's HTTPS endpoint"
	}
	if e.Status != 0 {
		return fmt.Sprintf("%s: %s answered %d %s", e.Op, where, e.Status, http.StatusText(e.Status))
	}
	return fmt.Sprintf("%s: %s: %v", e.Op, where, e.Err)
}

func (e *BlobError) Unwrap() error { return e.Err }

// blobFailed wraps an HTTP failure as a BlobError, dropping the request
// URL that net/http puts in its errors.
func blobFailed(op string, relay bool, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return &BlobError{Op: op, Relay: relay, Err: err}
}

// blobRequest builds the grant's HTTP request and the client to send it
// with: a path goes to the relay's own HTTPS (TCP, same address).
func (c *Conn) blobRequest(ctx context.Context, g *BlobGrant, body io.Reader) (*http.Client, *http.Request, error) {
	relayHC, remoteHC, err := c.blobHTTP()
	if err != nil {
		return nil, nil, err
	}
	url, hc := g.URL, remoteHC
	if strings.HasPrefix(url, "/") {
		url, hc = "https://"+c.opts.Addr+url, relayHC
	}
	req, err := http.NewRequestWithContext(ctx, g.Method, url, body)
	if err != nil {
		return nil, nil, errors.New("malformed grant URL") // not echoed: a credential
	}
	for k, v := range g.Header {
		req.Header.Set(k, v)
	}
	if cl := req.Header.Get("Content-Length"); cl != "" {
		n, err := strconv.ParseInt(cl, 10, 64)
		if err != nil {
			return nil, nil, errors.New("malformed Content-Length in grant")
		}
		req.ContentLength = n
		req.Header.Del("Content-Length")
	}
	return hc, req, nil
}

// UploadBlob uploads exactly size bytes from body as a new blob and
// returns its id. Storage refuses a body of another size.
func (c *Conn) UploadBlob(ctx context.Context, body io.Reader, size int64) (string, error) {
	g, err := c.UploadGrant(ctx, size)
	if err != nil {
		return "", err
	}
	ours := strings.HasPrefix(g.URL, "/")
	hc, req, err := c.blobRequest(ctx, g, body)
	if err != nil {
		return "", &BlobError{Op: "upload", Relay: ours, Err: err}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", blobFailed("upload", ours, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return "", &BlobError{Op: "upload", Relay: ours, Status: resp.StatusCode}
	}
	return g.BlobID, nil
}

// DownloadBlob opens a blob for reading; the caller closes the body.
func (c *Conn) DownloadBlob(ctx context.Context, blobID string) (io.ReadCloser, int64, error) {
	g, err := c.DownloadGrant(ctx, blobID)
	if err != nil {
		return nil, 0, err
	}
	ours := strings.HasPrefix(g.URL, "/")
	hc, req, err := c.blobRequest(ctx, g, nil)
	if err != nil {
		return nil, 0, &BlobError{Op: "download", Relay: ours, Err: err}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, 0, blobFailed("download", ours, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, 0, &BlobError{Op: "download", Relay: ours, Status: resp.StatusCode}
	}
	return resp.Body, resp.ContentLength, nil
}
