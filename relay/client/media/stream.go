package media

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/pigeonhole/pigeonhole/spec"
)

const (
	// ChunkSize is the size of every plaintext chunk but the last.
	ChunkSize = spec.MediaChunkSize
	// MaxSize is the largest plaintext accepted, in bytes.
	MaxSize = spec.MediaMaxSize
	// KeySize is the size of a media key, in bytes.
	KeySize = 32
)

const (
	headerSize = spec.MediaHeaderSize
	tagSize    = spec.MediaTagSize
	nonceSize  = 12
	flagLast   = 0x01
)

// header starts every ciphertext: a magic and the version 1.
var header = [headerSize]byte{'P', 'H', 'M', 'E', 'D', 'I', 'A', 0x01}

// additionalData returns the additional data of every chunk of a file of
// size bytes: the header, then size as a big-endian uint64. Binding the
// size makes a wrong size fail even when the padding would hide it.
func additionalData(size int64) [headerSize + 8]byte {
	var ad [headerSize + 8]byte
	copy(ad[:], header[:])
	binary.BigEndian.PutUint64(ad[headerSize:], uint64(size))
	return ad
}

// ErrCorrupt is wrapped by every error of Decrypt that means the
// ciphertext is not the one the key, size and digest describe.
var ErrCorrupt = errors.New("media: ciphertext is corrupt or not this file's")

// NewKey returns a fresh random 32-byte key. Use a new key for every file.
func NewKey() ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("media: new key: %w", err)
	}
	return k, nil
}

// newAEAD returns AES-256-GCM under key.
func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("media: key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("media: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("media: %w", err)
	}
	return aead, nil
}

// setNonce writes the nonce of chunk i: the 11-byte big-endian i, then
// flagLast for the final chunk and 0 otherwise.
func setNonce(nonce *[nonceSize]byte, i int64, final bool) {
	binary.BigEndian.PutUint64(nonce[3:11], uint64(i))
	nonce[0], nonce[1], nonce[2] = 0, 0, 0
	nonce[11] = 0
	if final {
		nonce[11] = flagLast
	}
}

// Encrypt reads exactly size bytes from src, pads them to PaddedSize(size)
// with zeros, and writes the ciphertext, CiphertextSize(size) bytes, to
// dst. It holds one chunk in memory whatever the size. It returns the
// SHA-256 digest of the ciphertext. It fails if size is negative or above
// MaxSize, if key is not 32 bytes, or if src holds fewer or more than size
// bytes; dst then has received part of a ciphertext, to be discarded.
// Given the key, Encrypt is deterministic.
func Encrypt(dst io.Writer, src io.Reader, size int64, key []byte) (digest []byte, err error) {
	if size < 0 || size > MaxSize {
		return nil, fmt.Errorf("media: size %d is outside [0, %d]", size, MaxSize)
	}
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	w := io.MultiWriter(dst, h)
	if _, err := w.Write(header[:]); err != nil {
		return nil, fmt.Errorf("media: writing ciphertext: %w", err)
	}
	padded := PaddedSize(size)
	chunks := numChunks(padded)
	buf := make([]byte, ChunkSize+tagSize)
	ad := additionalData(size)
	var nonce [nonceSize]byte
	left := size // plaintext bytes still to read from src
	if size == 0 {
		if err := checkEnd(src, size); err != nil {
			return nil, err
		}
	}
	for i := range chunks {
		n := min(padded-i*ChunkSize, ChunkSize)
		pt := buf[:n]
		r := min(left, n)
		if _, err := io.ReadFull(src, pt[:r]); err != nil {
			return nil, shortSource(size, size-left, err)
		}
		left -= r
		clear(pt[r:])
		if r > 0 && left == 0 {
			if err := checkEnd(src, size); err != nil {
				return nil, err
			}
		}
		setNonce(&nonce, i, i == chunks-1)
		sealed := aead.Seal(pt[:0], nonce[:], pt, ad[:])
		if _, err := w.Write(sealed); err != nil {
			return nil, fmt.Errorf("media: writing ciphertext: %w", err)
		}
	}
	return h.Sum(nil), nil
}

// shortSource explains a failure to read the plaintext after got bytes.
func shortSource(size, got int64, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("media: source ended before %d bytes: %w", size, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("media: reading plaintext after %d bytes: %w", got, err)
}

// checkEnd checks that src, having given size bytes, is at its end.
func checkEnd(src io.Reader, size int64) error {
	var one [1]byte
	n, err := io.ReadFull(src, one[:])
	switch {
	case n > 0:
		return fmt.Errorf("media: source has more than %d bytes", size)
	case errors.Is(err, io.EOF):
		return nil
	default:
		return fmt.Errorf("media: reading plaintext after %d bytes: %w", size, err)
	}
}

// Decrypt reads a ciphertext from src, authenticates every chunk with key,
// and writes the first size plaintext bytes to dst; the padding after them
// must be zeros and is not written. The ciphertext must be exactly
// CiphertextSize(size) bytes and its SHA-256 must equal digest. Any
// mismatch — a tampered, truncated, extended or reordered ciphertext, a
// wrong key, digest or size, or a key or digest of the wrong length —
// returns an error wrapping ErrCorrupt; an error reading src or writing
// dst is returned wrapped as is.
//
// Decrypt streams in constant memory, so dst may have received the
// plaintext of earlier chunks before a later check fails: write to a
// temporary file and discard it on any error.
func Decrypt(dst io.Writer, src io.Reader, size int64, key, digest []byte) error {
	if size < 0 || size > MaxSize {
		return fmt.Errorf("%w: size %d is outside [0, %d]", ErrCorrupt, size, MaxSize)
	}
	if len(digest) != sha256.Size {
		return fmt.Errorf("%w: digest is %d bytes, want %d", ErrCorrupt, len(digest), sha256.Size)
	}
	aead, err := newAEAD(key)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	d := &decrypter{src: src, h: sha256.New()}
	if err := d.header(); err != nil {
		return err
	}
	padded := PaddedSize(size)
	chunks := numChunks(padded)
	buf := make([]byte, ChunkSize+tagSize)
	ad := additionalData(size)
	var nonce [nonceSize]byte
	left := size // plaintext bytes still to write to dst
	for i := range chunks {
		n := min(padded-i*ChunkSize, ChunkSize)
		ct := buf[:n+tagSize]
		if err := d.read(ct); err != nil {
			return err
		}
		setNonce(&nonce, i, i == chunks-1)
		pt, err := aead.Open(ct[:0], nonce[:], ct, ad[:])
		if err != nil {
			return fmt.Errorf("%w: chunk %d does not authenticate", ErrCorrupt, i)
		}
		w := min(left, n)
		if !allZero(pt[w:]) {
			return fmt.Errorf("%w: padding is not zeros", ErrCorrupt)
		}
		if _, err := dst.Write(pt[:w]); err != nil {
			return fmt.Errorf("media: writing plaintext: %w", err)
		}
		left -= w
	}
	if err := d.end(); err != nil {
		return err
	}
	if subtle.ConstantTimeCompare(d.h.Sum(nil), digest) != 1 {
		return fmt.Errorf("%w: digest does not match", ErrCorrupt)
	}
	return nil
}

// decrypter reads a ciphertext and hashes what it reads.
type decrypter struct {
	src io.Reader
	h   hash.Hash
}

// read fills p from the ciphertext.
func (d *decrypter) read(p []byte) error {
	n, err := io.ReadFull(d.src, p)
	d.h.Write(p[:n])
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: ciphertext is truncated", ErrCorrupt)
	}
	if err != nil {
		return fmt.Errorf("media: reading ciphertext: %w", err)
	}
	return nil
}

// header reads and checks the header.
func (d *decrypter) header() error {
	var got [headerSize]byte
	if err := d.read(got[:]); err != nil {
		return err
	}
	if got != header {
		return fmt.Errorf("%w: not a version 1 media ciphertext", ErrCorrupt)
	}
	return nil
}

// end checks that the ciphertext has no byte after the final chunk.
func (d *decrypter) end() error {
	var one [1]byte
	n, err := io.ReadFull(d.src, one[:])
	switch {
	case n > 0:
		return fmt.Errorf("%w: data after the final chunk", ErrCorrupt)
	case errors.Is(err, io.EOF):
		return nil
	default:
		return fmt.Errorf("media: reading ciphertext: %w", err)
	}
}

// allZero reports whether every byte of p is zero.
func allZero(p []byte) bool {
	var acc byte
	for _, b := range p {
		acc |= b
	}
	return acc == 0
}
