package main

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMediaS3FromCredentialFiles starts the relay on a real MinIO with the
// keys in files, as an operator would; the bucket is created.
func TestMediaS3FromCredentialFiles(t *testing.T) {
	ep := os.Getenv("PIGEONHOLE_TEST_S3_ENDPOINT")
	if ep == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal(`CI=true but PIGEONHOLE_TEST_S3_ENDPOINT is unset; start MinIO with: eval "$(bash .ci/minio)"`)
		}
		t.Skip(`no MinIO (PIGEONHOLE_TEST_S3_ENDPOINT is unset); start one with: eval "$(bash .ci/minio)"`)
	}
	dir := t.TempDir()
	access, secret := filepath.Join(dir, "access"), filepath.Join(dir, "secret")
	os.WriteFile(access, []byte(os.Getenv("PIGEONHOLE_TEST_S3_ACCESS_KEY")+"\n"), 0o600)
	os.WriteFile(secret, []byte(os.Getenv("PIGEONHOLE_TEST_S3_SECRET_KEY")+"\n"), 0o600)
	var b [4]byte
	rand.Read(b[:])
	bucket := "serve-test-" + hex.EncodeToString(b[:])
	out, err := startWith(t, "-media", "s3", "-s3-endpoint", ep, "-s3-insecure", "-s3-bucket", bucket,
		"-s3-access-key-file", access, "-s3-secret-key-file", secret)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "media in S3") || strings.Contains(out, os.Getenv("PIGEONHOLE_TEST_S3_SECRET_KEY")) {
		t.Fatalf("log:\n%s", out)
	}
	_, err = startWith(t, "-media", "s3", "-s3-endpoint", ep, "-s3-insecure", "-s3-bucket", bucket,
		"-s3-access-key-file", access, "-s3-secret-key-file", filepath.Join(dir, "missing"))
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("a missing secret file: %v", err)
	}
}
