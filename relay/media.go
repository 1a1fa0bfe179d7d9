package relay

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/pigeonhole/pigeonhole/blobs"
	"github.com/pigeonhole/pigeonhole/spec"
)

// BlobStore is what the relay needs of media storage. *blobs.S3 and
// *blobs.Dir implement it.
type BlobStore interface {
	UploadGrant(ctx context.Context, id string, size int64, ttl time.Duration) (blobs.Grant, error)
	DownloadGrant(ctx context.Context, id string, ttl time.Duration) (blobs.Grant, error)
}

// UploadQuota bounds what an account may upload: Reserve counts one blob
// of n bytes, or refuses with an error wrapping blobs.ErrQuota.
// *blobs.Quota implements it.
type UploadQuota interface {
	Reserve(ctx context.Context, acct [16]byte, n int64, now time.Time) error
}

var (
	_ BlobStore   = (*blobs.Dir)(nil)
	_ UploadQuota = (*blobs.Quota)(nil)
)

// UseBlobs makes the relay hand out grants for media in store, within
// quota (nil: none). Call it before Serve. Without it upload_grant and
// download_grant get MEDIA_UNAVAILABLE.
func (s *Server) UseBlobs(store BlobStore, quota UploadQuota) {
	s.blobs, s.blobQuota = store, quota
}

func newBlobID() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func specGrant(id string, g blobs.Grant) *spec.BlobGrant {
	h := make(map[string]string, len(g.Header))
	for k := range g.Header {
		h[k] = g.Header.Get(k)
	}
	return &spec.BlobGrant{BlobId: id, Method: g.Method, Url: g.URL, Headers: h, ExpiresMs: g.Expires.UnixMilli()}
}

func (c *conn) uploadGrant(id quic.StreamID, r *spec.UploadGrantRequest) (*spec.UploadGrantResponse, *spec.Error) {
	acct, _, e := c.waitAuth(c.ctx, id)
	if e != nil {
		return nil, e
	}
	if c.s.blobs == nil {
		return nil, spec.Err(spec.CodeMediaUnavailable, "this relay keeps no media")
	}
	// The limit is on the file a client sends: its ciphertext, padded to
	// a size bucket, may be up to 5% (and a tag per chunk) larger.
	if maxCipher := spec.MediaCiphertextSize(c.s.cfg.MaxBlobBytes); r.Size == 0 || r.Size > uint64(maxCipher) {
		return nil, spec.Err(spec.CodeBlobTooLarge, "a file is at most %d bytes (%d once encrypted and padded)", c.s.cfg.MaxBlobBytes, maxCipher)
	}
	if c.s.blobQuota != nil {
		err := c.s.blobQuota.Reserve(c.ctx, acct, int64(r.Size), c.s.now())
		if errors.Is(err, blobs.ErrQuota) {
			e := spec.Err(spec.CodeBlobQuota, "the account's upload quota for today (bytes or blobs) is used up")
			e.RetryAfterMs = untilNextUTCDay(c.s.now())
			return nil, e
		}
		if err != nil {
			return nil, c.s.internal("count the upload quota", err)
		}
	}
	blobID := newBlobID()
	g, err := c.s.blobs.UploadGrant(c.ctx, blobID, int64(r.Size), c.s.cfg.GrantLifetime)
	if err != nil {
		return nil, c.s.internal("grant an upload", err)
	}
	return &spec.UploadGrantResponse{Grant: specGrant(blobID, g)}, nil
}

func (c *conn) downloadGrant(id quic.StreamID, r *spec.DownloadGrantRequest) (*spec.DownloadGrantResponse, *spec.Error) {
	if _, _, e := c.waitAuth(c.ctx, id); e != nil {
		return nil, e
	}
	if c.s.blobs == nil {
		return nil, spec.Err(spec.CodeMediaUnavailable, "this relay keeps no media")
	}
	g, err := c.s.blobs.DownloadGrant(c.ctx, r.BlobId, c.s.cfg.GrantLifetime)
	if errors.Is(err, blobs.ErrNotFound) {
		return nil, spec.Err(spec.CodeUnknownBlob, "no such blob (it may have expired)")
	}
	if err != nil {
		if errors.Is(err, blobs.ErrInvalidID) {
			return nil, spec.Err(spec.CodeBadRequest, "malformed blob id")
		}
		return nil, c.s.internal("grant a download", err)
	}
	return &spec.DownloadGrantResponse{Grant: specGrant(r.BlobId, g)}, nil
}

// untilNextUTCDay is the time from now to the next UTC midnight, when
// the daily upload quota starts again, in milliseconds.
func untilNextUTCDay(now time.Time) uint32 {
	now = now.UTC()
	next := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC)
	return uint32(next.Sub(now) / time.Millisecond)
}
