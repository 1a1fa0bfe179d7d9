package blobs

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// maxS3PutSize is the largest blob an upload grant allows: the most a single
// S3 PUT may carry.
const maxS3PutSize = 5 << 30

// Defaults for the optional S3Config fields.
const (
	defaultS3Region   = "us-east-1"
	defaultS3Lifetime = 30 * 24 * time.Hour
)

// s3KeyPrefix is the key prefix of every blob; the lifecycle rule expires
// objects under it.
const s3KeyPrefix = "b/"

// S3Config configures an S3-compatible store (MinIO, AWS S3, ...).
type S3Config struct {
	Endpoint  string // host:port
	Secure    bool   // https
	Region    string // default "us-east-1"
	Bucket    string
	AccessKey string
	SecretKey string
	// Lifetime is how long a blob lives: NewS3 sets a bucket lifecycle rule
	// that expires it after this many whole days, rounded up (default 30
	// days). S3 runs expiry lazily, so a blob may linger somewhat longer.
	Lifetime time.Duration
}

// S3 stores blobs as objects "b/<id>" in one bucket.
type S3 struct {
	client *minio.Client
	bucket string
}

// NewS3 connects to the store (path-style bucket addressing, static
// credentials), creates the bucket if missing, and sets, idempotently, a
// lifecycle rule expiring every object under "b/" after cfg.Lifetime. It
// fails if the store cannot be reached or refuses either step.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	if cfg.Region == "" {
		cfg.Region = defaultS3Region
	}
	if cfg.Lifetime <= 0 {
		cfg.Lifetime = defaultS3Lifetime
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure: cfg.Secure,
		// Knowing the region spares a GetBucketLocation call per presign.
		Region:       cfg.Region,
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		return nil, fmt.Errorf("blobs: bucket %s at %s: %w", cfg.Bucket, cfg.Endpoint, err)
	}
	s := &S3{client: client, bucket: cfg.Bucket}
	if err := s.ensureBucket(ctx, cfg.Region); err != nil {
		return nil, fmt.Errorf("blobs: bucket %s at %s: %w", cfg.Bucket, cfg.Endpoint, err)
	}
	if err := s.ensureLifecycle(ctx, lifetimeDays(cfg.Lifetime)); err != nil {
		return nil, fmt.Errorf("blobs: bucket %s: lifecycle: %w", cfg.Bucket, err)
	}
	return s, nil
}

// ensureBucket creates the bucket unless it exists.
func (s *S3) ensureBucket(ctx context.Context, region string) error {
	ok, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("checking bucket: %w", err)
	}
	if ok {
		return nil
	}
	err = s.client.MakeBucket(ctx, s.bucket, minio.MakeBucketOptions{Region: region})
	if err != nil && minio.ToErrorResponse(err).Code != minio.BucketAlreadyOwnedByYou {
		return fmt.Errorf("creating bucket: %w", err)
	}
	return nil
}

// UploadGrant presigns a PUT of exactly size bytes (1 byte to 5 GiB) to blob
// id, valid for ttl (1 s to 7 days, whole seconds).
//
// Content-Length and Content-Type (ContentType) are among the signed
// headers, so the store refuses a request with any other length or any
// other content type (403, signature mismatch): an uploader cannot have
// the store serve its bytes as text/html. The client must send
// Grant.Header as given; a Go client sets
// http.Request.ContentLength to size, since net/http writes Content-Length
// from that field rather than from the header map.
func (s *S3) UploadGrant(ctx context.Context, id string, size int64, ttl time.Duration) (Grant, error) {
	if err := checkID(id); err != nil {
		return Grant{}, err
	}
	if size < 1 || size > maxS3PutSize {
		return Grant{}, fmt.Errorf("blobs: upload %s: size %d out of range 1..%d", id, size, int64(maxS3PutSize))
	}
	h := http.Header{
		"Content-Length": {strconv.FormatInt(size, 10)},
		"Content-Type":   {ContentType},
	}
	return s.presign(ctx, http.MethodPut, id, ttl, nil, h)
}

// DownloadGrant presigns a GET of blob id, valid for ttl (1 s to 7 days,
// whole seconds), or returns ErrNotFound if there is no such blob.
func (s *S3) DownloadGrant(ctx context.Context, id string, ttl time.Duration) (Grant, error) {
	if _, err := s.Stat(ctx, id); err != nil {
		return Grant{}, err
	}
	// The response headers are fixed by the signed query, whatever the
	// object's stored metadata: a blob is served as opaque bytes, to be
	// saved, never rendered.
	q := url.Values{
		"response-content-type":        {ContentType},
		"response-content-disposition": {"attachment"},
	}
	return s.presign(ctx, http.MethodGet, id, ttl, q, http.Header{})
}

// presign signs method on blob id with the query parameters in q and the
// headers in h.
func (s *S3) presign(ctx context.Context, method, id string, ttl time.Duration, q url.Values, h http.Header) (Grant, error) {
	ttl = ttl.Truncate(time.Second)
	// Taken before signing, so Expires is never later than the signature's
	// own expiry.
	expires := time.Now().Add(ttl)
	u, err := s.client.PresignHeader(ctx, method, s.bucket, s3KeyPrefix+id, ttl, q, h)
	if err != nil {
		return Grant{}, fmt.Errorf("blobs: presign %s: %w", method, err)
	}
	return Grant{Method: method, URL: u.String(), Header: h, Expires: expires}, nil
}

// Stat returns a blob's size, or an error wrapping ErrNotFound if it does
// not exist (or has expired).
func (s *S3) Stat(ctx context.Context, id string) (int64, error) {
	if err := checkID(id); err != nil {
		return 0, err
	}
	info, err := s.client.StatObject(ctx, s.bucket, s3KeyPrefix+id, minio.StatObjectOptions{})
	if err != nil {
		if minio.ToErrorResponse(err).Code == minio.NoSuchKey {
			return 0, ErrNotFound
		}
		return 0, fmt.Errorf("blobs: stat: %w", err)
	}
	return info.Size, nil
}

// Delete removes a blob; deleting a missing blob is not an error.
func (s *S3) Delete(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	err := s.client.RemoveObject(ctx, s.bucket, s3KeyPrefix+id, minio.RemoveObjectOptions{})
	if err != nil && minio.ToErrorResponse(err).Code != minio.NoSuchKey {
		return fmt.Errorf("blobs: delete: %w", err)
	}
	return nil
}
