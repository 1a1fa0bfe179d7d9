package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/client/media"
	"github.com/pigeonhole/pigeonhole/relay/client/messenger"
	"github.com/pigeonhole/pigeonhole/spec"
)

// sendFile encrypts a file with a fresh key (streaming, constant memory),
// uploads the ciphertext and sends the key, digest, size and blob id end
// to end.
func (c *cli) sendFile(ctx context.Context, args []string) error {
	fs := c.flagSet("send-file")
	verboseFlag(fs, &c.verbose)
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	args = fs.Args()
	if len(args) != 2 {
		return usagef("pigeon send-file [-v] ACCOUNT PATH", "send-file needs an account id and a file")
	}
	to, err := c.account(args[0])
	if err != nil {
		return err
	}
	f, err := os.Open(args[1])
	if err != nil {
		return failf("", "cannot read %s: %v", args[1], errors.Unwrap(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return failf("", "%s is not a regular file", args[1])
	}
	size := st.Size()
	if size > media.MaxSize {
		return failf("", "%s is over %d bytes", args[1], media.MaxSize)
	}
	d, conn, err := c.sendOnly(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	key, err := media.NewKey()
	if err != nil {
		return err
	}
	name := filepath.Base(args[1])
	pr, pw := io.Pipe()
	digestc := make(chan []byte, 1)
	bar := c.progress("uploading "+name, size)
	go func() {
		digest, err := media.Encrypt(pw, &countingReader{r: f, bar: bar}, size, key)
		digestc <- digest
		pw.CloseWithError(err)
	}()
	blobID, err := conn.UploadBlob(ctx, pr, media.CiphertextSize(size))
	pr.CloseWithError(io.ErrClosedPipe)
	digest := <-digestc
	bar.done()
	if err != nil {
		return blobError("upload", err)
	}
	id, err := newMessageID()
	if err != nil {
		return err
	}
	content := &spec.Content{Id: id, Body: &spec.Content_Attachment{Attachment: &spec.Attachment{
		BlobId: blobID, Key: key, Digest: digest, Size: uint64(size), FileName: name,
	}}}
	m, err := c.messenger()
	if err != nil {
		return err
	}
	copyOf := &spec.Content{Body: &spec.Content_Sent{Sent: &spec.SentTranscript{Destination: to, Text: &spec.Text{Body: "sent the file " + name}, Id: id}}}
	res, err := m.SendContent(ctx, to, content, copyOf)
	if err != nil {
		return c.sendError(to, err)
	}
	c.sayHow(d.AccountID(), to, res)
	n := res.Devices
	c.recordSent(to, false, content, &chatMessage{File: name, To: []string{hex.EncodeToString(to)}})
	if res.OwnCopyFailed {
		fmt.Fprintf(c.stderr, "pigeon: your other devices will not show this file: %s\n", res.OwnCopyError)
	}
	_ = conn.Finish(ctx)
	fmt.Fprintln(c.stdout, hex.EncodeToString(id))
	fmt.Fprintf(c.stderr, "pigeon: sent %s (%s) to %s (%d device%s)\n", name, humanSize(size), c.names(d.AccountID()).short(to), n, plural(n))
	return nil
}

// saveAttachment downloads, verifies and decrypts an attachment into dir,
// and returns the path it saved it as ("" when it did not).
// The plaintext goes to a temporary file that is renamed only when every
// chunk and the digest check out; otherwise nothing is left behind.
func (c *cli) saveAttachment(ctx context.Context, m *messenger.Messenger, sender []byte, a *messenger.Attachment) string {
	name := safeName(a.FileName)
	fail := func(format string, args ...any) {
		fmt.Fprintf(c.stderr, "pigeon: refused the file %q from %s: %s\n", name, short(sender), fmt.Sprintf(format, args...))
	}
	body, err := m.FetchAttachment(ctx, a)
	switch {
	case errors.Is(err, messenger.ErrBadAttachment):
		fail("the message describing it is malformed")
		return ""
	case errors.Is(err, messenger.ErrUnreachable):
		fail("cannot reach the relay: %v", dialError(err))
		return ""
	case err != nil:
		fail("%v", err)
		return ""
	}
	defer body.Close()
	if err := os.MkdirAll(c.saveDir, 0o700); err != nil {
		fail("%v", err)
		return ""
	}
	tmp, err := os.CreateTemp(c.saveDir, ".pigeon-*.part")
	if err != nil {
		fail("%v", err)
		return ""
	}
	size := a.Size
	bar := c.progress("downloading "+name, size)
	err = media.Decrypt(&countingWriter{w: tmp, bar: bar}, body, size, a.Key, a.Digest)
	bar.done()
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		if errors.Is(err, media.ErrCorrupt) {
			fail("it was tampered with, truncated or swapped; nothing was saved")
		} else {
			fail("%v; nothing was saved", err)
		}
		return ""
	}
	// Linked into place under a name nothing has: never over a file.
	final, err := linkFree(tmp.Name(), c.saveDir, name)
	_ = os.Remove(tmp.Name())
	if err != nil {
		fail("%v", err)
		return ""
	}
	return final
}

// safeName keeps a sender's file name to a plain base name without
// control or bidirectional-formatting characters, at most 200 bytes.
func safeName(n string) string {
	n = filepath.Base(strings.ReplaceAll(n, "\\", "/"))
	n = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == '/' || r == utf8.RuneError {
			return -1
		}
		return r
	}, n)
	for len(n) > 200 {
		_, sz := utf8.DecodeLastRuneInString(n)
		n = n[:len(n)-sz]
	}
	switch {
	case n == "" || n == "." || n == "..":
		n = "file"
	case strings.HasPrefix(n, "."):
		n = "file" + n
	}
	return n
}

// linkFree hard-links tmp into dir under name, or "name (1)" and so on if
// that exists; a link never replaces a file, even one that appears
// meanwhile.
func linkFree(tmp, dir, name string) (string, error) {
	ext := filepath.Ext(name)
	base := strings.TrimSuffix(name, ext)
	for i := 0; i < 1000; i++ {
		p := filepath.Join(dir, name)
		if i > 0 {
			p = filepath.Join(dir, fmt.Sprintf("%s (%d)%s", base, i, ext))
		}
		err := os.Link(tmp, p)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return "", err
		}
	}
	var r [4]byte
	_, _ = rand.Read(r[:])
	p := filepath.Join(dir, base+"-"+hex.EncodeToString(r[:])+ext)
	return p, os.Link(tmp, p)
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// cleanStaleParts removes temporary download files older than an hour
// from dir: what a receiver killed mid-download left (partial plaintext).
// A younger one may belong to a receiver still running.
func cleanStaleParts(dir string, now time.Time) int {
	matches, _ := filepath.Glob(filepath.Join(dir, ".pigeon-*.part"))
	n := 0
	for _, m := range matches {
		if st, err := os.Lstat(m); err == nil && st.Mode().IsRegular() && now.Sub(st.ModTime()) > time.Hour {
			if os.Remove(m) == nil {
				n++
			}
		}
	}
	return n
}

// blobError words a failed upload or download for people, with a hint
// that fits the failure. It never shows a grant's URL (a credential).
func blobError(op string, err error) error {
	var re *client.Error
	if errors.As(err, &re) {
		return relayError(op, err)
	}
	if errors.Is(err, context.Canceled) {
		return failf("", "%s interrupted; nothing was sent", op)
	}
	var be *client.BlobError
	if errors.As(err, &be) {
		switch {
		case be.Status != 0:
			return failf("", "%s failed: %v", op, be)
		case be.Relay:
			return failf("files go over HTTPS on the relay's TCP port (same number as QUIC's): is TCP open too?", "%s failed: %v", op, be)
		default:
			return failf("the relay's media storage is unreachable from here: tell the relay's operator", "%s failed: %v", op, be)
		}
	}
	return fmt.Errorf("%s: %w", op, err)
}
