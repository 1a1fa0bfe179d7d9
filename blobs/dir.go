package blobs

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// DirConfig configures a directory store.
type DirConfig struct {
	// Path is the directory; it is created (0700) if missing.
	Path string
	// BaseURL is where Handler is served, such as "https://relay:4433";
	// empty makes grant URLs paths ("/blobs/…"), which a Pigeonhole client
	// resolves against the relay it is connected to.
	BaseURL string
	// Key signs grants: 32 random bytes, the same on every start.
	Key []byte
	// Lifetime is how long a blob is kept. Default 30 days.
	Lifetime time.Duration
}

// Dir stores blobs as files in a directory and serves them itself, through
// Handler, at URLs it signs with HMAC-SHA256: the same kind of grant as a
// presigned S3 URL, so clients need one code path.
type Dir struct {
	cfg  DirConfig
	now  func() time.Time
	root *os.Root
}

// NewDir opens (or creates) the directory store.
func NewDir(cfg DirConfig) (*Dir, error) {
	if len(cfg.Key) != 32 {
		return nil, fmt.Errorf("blobs: the grant key must be 32 bytes, not %d", len(cfg.Key))
	}
	if _, err := url.Parse(cfg.BaseURL); err != nil {
		return nil, fmt.Errorf("blobs: bad base URL %q", cfg.BaseURL)
	}
	if cfg.Lifetime <= 0 {
		cfg.Lifetime = 30 * 24 * time.Hour
	}
	if err := os.MkdirAll(cfg.Path, 0o700); err != nil {
		return nil, fmt.Errorf("blobs: %w", err)
	}
	root, err := os.OpenRoot(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("blobs: %w", err)
	}
	return &Dir{cfg: cfg, now: time.Now, root: root}, nil
}

// Close releases the directory.
func (d *Dir) Close() error { return d.root.Close() }

// name is a blob's file: two levels, so no directory grows huge.
func name(id string) string { return filepath.Join(id[:1], id) }

func (d *Dir) sign(method, id string, size int64, exp int64) string {
	m := hmac.New(sha256.New, d.cfg.Key)
	fmt.Fprintf(m, "pigeonhole blob grant v1\n%s\n%s\n%d\n%d", method, id, size, exp)
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (d *Dir) grant(method, id string, size int64, ttl time.Duration) Grant {
	exp := d.now().Add(ttl).Truncate(time.Second)
	q := url.Values{}
	q.Set("exp", strconv.FormatInt(exp.Unix(), 10))
	h := http.Header{}
	if method == http.MethodPut {
		q.Set("size", strconv.FormatInt(size, 10))
		h.Set("Content-Length", strconv.FormatInt(size, 10))
		h.Set("Content-Type", ContentType)
	}
	q.Set("sig", d.sign(method, id, size, exp.Unix()))
	return Grant{Method: method, URL: strings.TrimSuffix(d.cfg.BaseURL, "/") + "/blobs/" + id + "?" + q.Encode(), Header: h, Expires: exp}
}

// UploadGrant signs a PUT of exactly size bytes to blob id, valid for ttl.
func (d *Dir) UploadGrant(_ context.Context, id string, size int64, ttl time.Duration) (Grant, error) {
	if err := checkID(id); err != nil {
		return Grant{}, err
	}
	if size <= 0 {
		return Grant{}, errors.New("blobs: a blob has at least one byte")
	}
	return d.grant(http.MethodPut, id, size, ttl), nil
}

// DownloadGrant signs a GET of blob id, valid for ttl.
func (d *Dir) DownloadGrant(ctx context.Context, id string, ttl time.Duration) (Grant, error) {
	if _, err := d.Stat(ctx, id); err != nil {
		return Grant{}, err
	}
	return d.grant(http.MethodGet, id, 0, ttl), nil
}

// Stat returns a blob's size, or ErrNotFound (also once it expired).
func (d *Dir) Stat(_ context.Context, id string) (int64, error) {
	if err := checkID(id); err != nil {
		return 0, err
	}
	st, err := d.root.Stat(name(id))
	if errors.Is(err, fs.ErrNotExist) || (err == nil && d.expired(st)) {
		return 0, ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("blobs: stat: %w", withoutPath(err))
	}
	return st.Size(), nil
}

func (d *Dir) expired(st fs.FileInfo) bool {
	return d.now().Sub(st.ModTime()) > d.cfg.Lifetime
}

// Delete removes a blob; a missing one is not an error.
func (d *Dir) Delete(_ context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	if err := d.root.Remove(name(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blobs: delete: %w", withoutPath(err))
	}
	return nil
}

// Expire deletes every blob older than the lifetime (and upload files
// left behind by a crash) and returns how many it deleted.
func (d *Dir) Expire(ctx context.Context) (int, error) {
	n := 0
	err := fs.WalkDir(d.root.FS(), ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		st, err := e.Info()
		if err != nil {
			return nil // removed meanwhile
		}
		stale := strings.HasSuffix(p, ".part") && d.now().Sub(st.ModTime()) > time.Hour
		if d.expired(st) || stale {
			if err := d.root.Remove(p); err == nil {
				n++
			}
		}
		return nil
	})
	return n, err
}

// Run expires blobs every hour until ctx ends.
func (d *Dir) Run(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		_, _ = d.Expire(ctx)
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// withoutPath drops the file name (which holds the blob id) from a file
// system error, keeping its cause.
func withoutPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}
