package media

import "github.com/pigeonhole/pigeonhole/spec"

// MinPaddedSize is the smallest bucket: every plaintext of at most this
// many bytes is padded to it.
const MinPaddedSize = spec.MediaMinPaddedSize

// PaddedSize returns the bucket a plaintext of n bytes is padded to:
// MinPaddedSize (4 KiB) for n up to 4 KiB, and otherwise the smallest
// value of the form floor(1.05^k), k an integer, that is at least n — the
// attachment buckets of Signal, at most 5% above n. It is monotonic and
// never below n. It returns -1 when n is negative or above MaxSize.
// (spec.MediaPaddedSize, which the relay uses too.)
func PaddedSize(n int64) int64 { return spec.MediaPaddedSize(n) }

// CiphertextSize returns the exact size of the ciphertext of a plaintext
// of n bytes: the header, the padded plaintext, and a tag per chunk. It
// returns -1 when n is negative or above MaxSize.
func CiphertextSize(n int64) int64 { return spec.MediaCiphertextSize(n) }

// numChunks returns the number of chunks of a padded plaintext of p > 0
// bytes.
func numChunks(p int64) int64 {
	return (p + ChunkSize - 1) / ChunkSize
}
