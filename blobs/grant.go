package blobs

import (
	"errors"
	"net/http"
	"regexp"
	"time"
)

// Grant is what a client needs to upload or download one blob directly:
// an HTTP request to make.
type Grant struct {
	Method  string      // "PUT" or "GET"
	URL     string      // absolute, signed
	Header  http.Header // headers to send as given (signed), such as Content-Length
	Expires time.Time
}

// ContentType is the only content type a blob is uploaded and served
// with: blobs are ciphertext, and a store must never serve one as
// something a browser renders (text/html, image/svg+xml, ...).
const ContentType = "application/octet-stream"

// ErrNotFound is returned for a blob that does not exist (or expired).
var ErrNotFound = errors.New("blobs: no such blob")

// ErrInvalidID is returned for a malformed blob id.
var ErrInvalidID = errors.New("blobs: invalid blob id")

var idRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// checkID validates a blob id: 1 to 64 characters of [A-Za-z0-9_-]. Its
// error does not repeat the id: errors reach the relay's log, and ids do
// not belong there.
func checkID(id string) error {
	if !idRE.MatchString(id) {
		return ErrInvalidID
	}
	return nil
}
