package relay_test

import (
	"strings"
	"testing"

	"github.com/pigeonhole/pigeonhole/spec"
)

// TestBlobLimitIsTheFileSize: MaxBlobBytes is the largest file a client
// may send, so the grant for exactly that file's ciphertext (padded to its
// bucket, tags added) is given, one byte more is refused, and the refusal
// names the limit in file bytes.
func TestBlobLimitIsTheFileSize(t *testing.T) {
	cfg := testConfig()
	cfg.MaxBlobBytes = 99 << 20 // the file that padding pushed over the limit
	r, _ := startMediaRelay(t, cfg, 1<<30)
	ac := r.session(t, r.register(t, 1), 0)
	full := spec.MediaCiphertextSize(cfg.MaxBlobBytes)
	if full <= cfg.MaxBlobBytes {
		t.Fatalf("ciphertext of %d bytes is %d", cfg.MaxBlobBytes, full)
	}
	if _, err := ac.UploadGrant(ctxT(t), full); err != nil {
		t.Fatalf("grant for a %d-byte file (%d of ciphertext): %v", cfg.MaxBlobBytes, full, err)
	}
	_, err := ac.UploadGrant(ctxT(t), full+1)
	wantCode(t, err, spec.CodeBlobTooLarge)
	if !strings.Contains(err.Error(), "a file is at most 103809024 bytes") {
		t.Errorf("refusal does not name the file limit: %v", err)
	}
}
