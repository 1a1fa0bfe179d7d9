package messenger

import (
	"context"
	"io"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/client/media"
	"github.com/pigeonhole/pigeonhole/spec"
)

// Attachment points at a file sent through the relay's blob storage
// (protocol.md, "Media"): the ciphertext is in the blob, the key to it
// only here. Every field came from the sender: FileName is theirs to
// choose (an app keeps only a safe base name of it), and FetchAttachment
// checks Size and Key before it downloads anything.
type Attachment struct {
	BlobID   string
	Key      []byte // media.KeySize bytes, fresh per file
	Digest   []byte // SHA-256 of the ciphertext
	Size     int64  // the file's exact size
	FileName string
}

func attachmentOf(a *spec.Attachment) *Attachment {
	return &Attachment{BlobID: a.GetBlobId(), Key: a.GetKey(), Digest: a.GetDigest(), Size: int64(min(a.GetSize(), 1<<62)), FileName: a.GetFileName()}
}

// FetchAttachment downloads the attachment's ciphertext (Go surface);
// media.Decrypt(w, body, a.Size, a.Key, a.Digest) turns it into the file
// and checks every chunk and the digest. The caller closes body. An
// attachment whose size or key is impossible is refused before anything
// is downloaded, with an error wrapping ErrBadAttachment.
func (m *Messenger) FetchAttachment(ctx context.Context, a *Attachment) (body io.ReadCloser, err error) {
	if a == nil || a.Size < 0 || a.Size > media.MaxSize || len(a.Key) != media.KeySize {
		return nil, ErrBadAttachment
	}
	err = m.conn(ctx, func(conn *client.Conn) error {
		body, _, err = conn.DownloadBlob(ctx, a.BlobID)
		return err
	})
	if err != nil {
		return nil, err // the relay's or the dial's words, as they are
	}
	return body, nil
}
