package blobs

import (
	"crypto/hmac"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// Handler serves the URLs the grants name: PUT /blobs/<id> stores exactly
// the signed number of bytes, once, and refuses (415) a Content-Type other
// than ContentType; GET /blobs/<id> returns them as ContentType, with
// nosniff, as an attachment, so a browser never renders a blob. Any
// request without a valid, unexpired signature gets 403, like S3.
func (d *Dir) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := strings.CutPrefix(r.URL.Path, "/blobs/")
		if !ok || checkID(id) != nil {
			http.Error(w, "no such blob", http.StatusNotFound)
			return
		}
		q := r.URL.Query()
		exp, err := strconv.ParseInt(q.Get("exp"), 10, 64)
		if err != nil || d.now().Unix() > exp {
			http.Error(w, "the grant expired or is malformed", http.StatusForbidden)
			return
		}
		var size int64
		if r.Method == http.MethodPut {
			if size, err = strconv.ParseInt(q.Get("size"), 10, 64); err != nil || size <= 0 {
				http.Error(w, "malformed grant", http.StatusForbidden)
				return
			}
		}
		want := d.sign(r.Method, id, size, exp)
		if !hmac.Equal([]byte(want), []byte(q.Get("sig"))) {
			http.Error(w, "the signature does not match", http.StatusForbidden)
			return
		}
		switch r.Method {
		case http.MethodPut:
			d.put(w, r, id, size)
		case http.MethodGet:
			d.get(w, r, id)
		default:
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	})
}

// put stores the body if it is exactly size bytes, through a temporary
// file that is synced and then linked into place, so a blob is whole or
// absent. One upload of an id runs at a time (the temporary file is
// created exclusively) and a stored blob is never replaced (the link
// fails if it exists), so a grant cannot be replayed to overwrite one.
func (d *Dir) put(w http.ResponseWriter, r *http.Request, id string, size int64) {
	// Only the blob content type, or none: what is stored is served as
	// ContentType anyway, but an uploader asking for another is refused
	// rather than silently ignored, as S3 refuses it.
	if ct := r.Header.Get("Content-Type"); ct != "" && ct != ContentType {
		http.Error(w, "Content-Type must be "+ContentType, http.StatusUnsupportedMediaType)
		return
	}
	if r.ContentLength != size {
		http.Error(w, "Content-Length must be the granted size", http.StatusBadRequest)
		return
	}
	if _, err := d.root.Stat(name(id)); err == nil {
		http.Error(w, "the blob exists", http.StatusConflict)
		return
	}
	if err := d.root.MkdirAll(id[:1], 0o700); err != nil {
		http.Error(w, "storage failed", http.StatusInternalServerError)
		return
	}
	// A slow sender may take a minute plus one second per 64 KiB, no more.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(time.Minute + time.Duration(size>>16)*time.Second))
	tmp := name(id) + ".part"
	f, err := d.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		http.Error(w, "an upload of this blob is under way", http.StatusConflict)
		return
	}
	if err != nil {
		http.Error(w, "storage failed", http.StatusInternalServerError)
		return
	}
	defer func() { _ = d.root.Remove(tmp) }()
	n, err := io.Copy(f, io.LimitReader(r.Body, size+1))
	if err == nil && n != size {
		err = errors.New("body size is not the granted size")
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		http.Error(w, "upload failed: the body must be exactly the granted size", http.StatusBadRequest)
		return
	}
	if err := d.root.Link(tmp, name(id)); err != nil {
		if errors.Is(err, fs.ErrExist) {
			http.Error(w, "the blob exists", http.StatusConflict)
			return
		}
		http.Error(w, "storage failed", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (d *Dir) get(w http.ResponseWriter, r *http.Request, id string) {
	f, err := d.root.Open(name(id))
	if errors.Is(err, fs.ErrNotExist) {
		http.Error(w, "no such blob", http.StatusNotFound)
		return
	}
	if err != nil {
		http.Error(w, "storage failed", http.StatusInternalServerError)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || d.expired(st) {
		http.Error(w, "no such blob", http.StatusNotFound)
		return
	}
	h := w.Header()
	h.Set("Content-Type", ContentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Disposition", "attachment")
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	http.ServeContent(w, r, "", time.Time{}, f)
}
