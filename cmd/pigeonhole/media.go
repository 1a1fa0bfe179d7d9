package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pigeonhole/pigeonhole/blobs"
	"github.com/pigeonhole/pigeonhole/relay"
)

// mediaFlags are the media settings of pigeonhole serve.
type mediaFlags struct {
	kind, dir                                  string
	s3Endpoint, s3Bucket, s3Region             string
	s3AccessKeyFile, s3SecretKeyFile, grantKey string
	s3Insecure                                 bool
	quota                                      blobs.QuotaConfig
	maxBlob                                    int64 // mirrors -max-blob-bytes
	lifetime                                   time.Duration
}

func (m *mediaFlags) register(fs *flag.FlagSet, cfg *relay.Config) {
	fs.StringVar(&m.kind, "media", "dir", "where encrypted media go: `dir` (a directory, served by the relay over HTTPS on its own address), s3 (MinIO or any S3) or off")
	fs.StringVar(&m.dir, "media-dir", "", "media `directory` with -media dir (default: blobs in -data)")
	fs.StringVar(&m.s3Endpoint, "s3-endpoint", "", "S3 `host:port` with -media s3")
	fs.StringVar(&m.s3Bucket, "s3-bucket", "pigeonhole-media", "S3 `bucket` (created if missing, with a lifecycle rule)")
	fs.StringVar(&m.s3Region, "s3-region", "us-east-1", "S3 `region`")
	fs.StringVar(&m.s3AccessKeyFile, "s3-access-key-file", "", "`file` holding the S3 access key")
	fs.StringVar(&m.s3SecretKeyFile, "s3-secret-key-file", "", "`file` holding the S3 secret key")
	fs.BoolVar(&m.s3Insecure, "s3-insecure", false, "talk to S3 over plain HTTP (a MinIO on localhost)")
	fs.StringVar(&m.grantKey, "media-grant-key", "", "`file` with the 32-byte key that signs grants with -media dir (default: blob-grant.key in -data, created on first start)")
	fs.Int64Var(&cfg.MaxBlobBytes, "max-blob-bytes", 100<<20, "largest file a client may send as media, in bytes (its ciphertext, padded, may be up to 5% larger; at most 4 GiB)")
	fs.Int64Var(&m.quota.Bytes, "blob-quota", blobs.DefaultQuotaBytes, "bytes an account may upload per UTC day (each blob billed at least -blob-min-billed-bytes)")
	fs.Int64Var(&m.quota.Blobs, "blob-quota-count", blobs.DefaultQuotaBlobs, "blobs an account may upload per UTC day, whatever their sizes")
	fs.Int64Var(&m.quota.MinBilled, "blob-min-billed-bytes", blobs.DefaultMinBilledBytes, "the least one blob counts against -blob-quota, in bytes (a small blob still costs a file)")
	fs.DurationVar(&m.lifetime, "blob-lifetime", 30*24*time.Hour, "media are deleted this `duration` after upload")
}

// media is the store the flags describe, and what serving it needs.
type media struct {
	store relay.BlobStore
	dir   *blobs.Dir // with -media dir: serve its handler, expire it
}

func (m *mediaFlags) open(ctx context.Context, dataDir string, log *slog.Logger) (*media, error) {
	switch m.kind {
	case "off":
		log.Info("media are off: uploads are refused")
		return nil, nil
	case "dir":
		path := m.dir
		if path == "" {
			path = filepath.Join(dataDir, "blobs")
		}
		key, err := loadKey(m.grantKey, dataDir, "blob-grant.key", "-media-grant-key")
		if err != nil {
			return nil, err
		}
		d, err := blobs.NewDir(blobs.DirConfig{Path: path, Key: key, Lifetime: m.lifetime})
		if err != nil {
			return nil, err
		}
		log.Info("media in a directory, served over HTTPS on the relay's address", "dir", path)
		return &media{store: d, dir: d}, nil
	case "s3":
		// -max-blob-bytes is at most 4 GiB of file (relay.New checks),
		// so a grant stays under 5 GiB, the most one S3 PUT can carry.
		if m.s3Endpoint == "" || m.s3AccessKeyFile == "" || m.s3SecretKeyFile == "" {
			return nil, fmt.Errorf("-media s3 needs -s3-endpoint, -s3-access-key-file and -s3-secret-key-file")
		}
		access, err := readSecret(m.s3AccessKeyFile)
		if err != nil {
			return nil, err
		}
		secret, err := readSecret(m.s3SecretKeyFile)
		if err != nil {
			return nil, err
		}
		// Checking the bucket is part of starting: bounded, and not cut
		// short by a signal that is handled once the relay runs.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		s, err := blobs.NewS3(sctx, blobs.S3Config{
			Endpoint: m.s3Endpoint, Secure: !m.s3Insecure, Region: m.s3Region, Bucket: m.s3Bucket,
			AccessKey: access, SecretKey: secret, Lifetime: m.lifetime,
		})
		if err != nil {
			return nil, err
		}
		log.Info("media in S3", "endpoint", m.s3Endpoint, "bucket", m.s3Bucket)
		return &media{store: s}, nil
	}
	return nil, fmt.Errorf("-media must be dir, s3 or off, not %q", m.kind)
}

func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// serve starts what the store needs next to the relay: for a directory,
// HTTPS on addr (TCP) and hourly expiry. stop undoes it.
func (md *media) serve(ctx context.Context, addr string, cert tls.Certificate, log *slog.Logger) (stop func(), err error) {
	if md == nil || md.dir == nil {
		return func() {}, nil
	}
	mux := http.NewServeMux()
	mux.Handle("/blobs/", md.dir.Handler())
	hs, err := relay.ServeHTTPS(addr, cert, mux, log)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { md.dir.Run(ctx); close(done) }()
	return func() { cancel(); <-done; hs.Close(); md.dir.Close() }, nil
}

// dualPort turns a listen address with port 0 into one whose port was
// free for both UDP (QUIC) and TCP (the media HTTPS) a moment ago, since
// the directory store is served on the same port number over TCP. Other
// addresses are returned as they are.
func dualPort(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port != "0" {
		return addr, nil
	}
	for range 20 {
		u, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
		if err != nil {
			return "", fmt.Errorf("listen on %s: %w", addr, err)
		}
		p := u.LocalAddr().(*net.UDPAddr).Port
		t, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		u.Close()
		if err == nil {
			t.Close()
			return net.JoinHostPort(host, strconv.Itoa(p)), nil
		}
	}
	return "", fmt.Errorf("listen on %s: no port free for both UDP and TCP", addr)
}
