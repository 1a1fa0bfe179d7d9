package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pigeonhole/pigeonhole/relay/client"
)

// TestBlobErrorHints: each failure of a blob transfer gets the hint that
// fits it, and none a URL: an interrupt none, the relay's own endpoint the
// TCP one, external storage the operator one.
func TestBlobErrorHints(t *testing.T) {
	for _, tc := range []struct {
		err  error
		msg  string
		hint string
	}{
		{&client.BlobError{Op: "upload", Relay: true, Err: context.Canceled}, "upload interrupted; nothing was sent", ""},
		{&client.BlobError{Op: "upload", Relay: false, Err: context.Canceled}, "upload interrupted; nothing was sent", ""},
		{&client.BlobError{Op: "upload", Relay: true, Err: errors.New("connection refused")}, "upload failed: upload: the relay's HTTPS endpoint: connection refused", "TCP"},
		{&client.BlobError{Op: "upload", Relay: false, Err: errors.New("no such host")}, "upload failed: upload: storage: no such host", "operator"},
		{&client.BlobError{Op: "download", Relay: false, Status: 403}, "download failed: download: storage answered 403 Forbidden", ""},
	} {
		var ue *userError
		if !errors.As(blobError(tc.err.(*client.BlobError).Op, tc.err), &ue) {
			t.Fatalf("%v: not a user error", tc.err)
		}
		if ue.msg != tc.msg || (tc.hint == "") != (ue.hint == "") || !strings.Contains(ue.hint, tc.hint) {
			t.Errorf("%v: %q, hint %q; want %q, hint with %q", tc.err, ue.msg, ue.hint, tc.msg, tc.hint)
		}
	}
}
