package main

import (
	"github.com/pigeonhole/pigeonhole/blobs/blobstest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMediaS3FromCredentialFiles starts the relay on a real MinIO with the
// keys in files, as an operator would; the bucket is created.
func TestMediaS3FromCredentialFiles(t *testing.T) {
	m := blobstest.MinIO(t)
	ep := m.Endpoint
	dir := t.TempDir()
	access, secret := filepath.Join(dir, "access"), filepath.Join(dir, "secret")
	os.WriteFile(access, []byte(m.AccessKey+"\n"), 0o600)
	os.WriteFile(secret, []byte(m.SecretKey+"\n"), 0o600)
	bucket := blobstest.Bucket("serve-test-")
	out, err := startWith(t, "-media", "s3", "-s3-endpoint", ep, "-s3-insecure", "-s3-bucket", bucket,
		"-s3-access-key-file", access, "-s3-secret-key-file", secret)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "media in S3") || strings.Contains(out, m.SecretKey) {
		t.Fatalf("log:\n%s", out)
	}
	_, err = startWith(t, "-media", "s3", "-s3-endpoint", ep, "-s3-insecure", "-s3-bucket", bucket,
		"-s3-access-key-file", access, "-s3-secret-key-file", filepath.Join(dir, "missing"))
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("a missing secret file: %v", err)
	}
}
