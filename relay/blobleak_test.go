package relay_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/pigeonhole/pigeonhole/relay/client"
)

// cancelAfter reads like r, and cancels the upload's context once n bytes
// have gone out (Ctrl-C in the middle of an upload).
type cancelAfter struct {
	r      io.Reader
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	if c.n <= 0 {
		c.cancel()
		return 0, context.Canceled
	}
	p = p[:min(len(p), c.n)]
	n, err := c.r.Read(p)
	c.n -= n
	return n, err
}

// TestBlobErrorsHideTheGrant: an upload interrupted half way, and one
// whose body does not match its grant, fail with a BlobError that says what
// happened, where (the relay's own endpoint), and never the grant's URL,
// which is a bearer credential.
func TestBlobErrorsHideTheGrant(t *testing.T) {
	cfg := testConfig()
	cfg.MaxBlobBytes = 4 << 20
	r, _ := startMediaRelay(t, cfg, 64<<20)
	alice := r.register(t, 1)
	ac := r.session(t, alice, 0)

	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	body := &cancelAfter{r: strings.NewReader(strings.Repeat("x", 2<<20)), n: 256 << 10, cancel: cancel}
	_, err := ac.UploadBlob(ctx, body, 2<<20)
	var be *client.BlobError
	if !errors.As(err, &be) || !be.Relay || be.Op != "upload" {
		t.Fatalf("interrupted upload: %v (%T)", err, err)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("interrupted upload does not say it was cancelled: %v", err)
	}
	for _, leak := range []string{"https://", "/blobs/", "?", r.opts.Addr} {
		if strings.Contains(err.Error(), leak) {
			t.Errorf("error shows %q of the grant: %v", leak, err)
		}
	}

	// A body longer than granted fails too, and says why, not where.
	_, err = ac.UploadBlob(ctxT(t), strings.NewReader("too long"), 3)
	if !errors.As(err, &be) || strings.Contains(err.Error(), "https://") || strings.Contains(err.Error(), "/blobs/") {
		t.Fatalf("refused upload: %v", err)
	}
}
