// Package blobstest finds the real MinIO that tests of S3 storage run
// against: .ci/minio starts one and exports where it is. Like
// net/http/httptest, it is for tests only.
package blobstest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
)

// S3 is where the test MinIO listens and the keys to it.
type S3 struct {
	Endpoint, AccessKey, SecretKey string
}

// MinIO returns the test MinIO from PIGEONHOLE_TEST_S3_ENDPOINT,
// PIGEONHOLE_TEST_S3_ACCESS_KEY and PIGEONHOLE_TEST_S3_SECRET_KEY. Without
// them it skips the test with a hint, except under CI=true, where a
// missing MinIO fails it.
func MinIO(t testing.TB) S3 {
	t.Helper()
	ep := os.Getenv("PIGEONHOLE_TEST_S3_ENDPOINT")
	if ep == "" {
		const how = `start one with: eval "$(bash .ci/minio)"`
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but PIGEONHOLE_TEST_S3_ENDPOINT is unset: this test needs MinIO; " + how)
		}
		t.Skip("PIGEONHOLE_TEST_S3_ENDPOINT is unset, so there is no MinIO to test against; " + how)
	}
	return S3{Endpoint: ep, AccessKey: os.Getenv("PIGEONHOLE_TEST_S3_ACCESS_KEY"), SecretKey: os.Getenv("PIGEONHOLE_TEST_S3_SECRET_KEY")}
}

// Bucket returns a fresh random bucket name starting with prefix.
func Bucket(prefix string) string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}
