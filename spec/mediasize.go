package spec

import (
	"math/big"
	"slices"
	"sync"
)

// The sizes of the media encryption format (protocol.md, "Encryption of
// files"), which the relay needs too: it states its blob limit as the
// largest file a client may send, and grants the ciphertext that file
// becomes.
const (
	// MediaChunkSize is the size of every plaintext chunk but the last.
	MediaChunkSize = 64 << 10
	// MediaMaxSize is the largest plaintext the format carries, in bytes.
	MediaMaxSize int64 = 4 << 30
	// MediaMinPaddedSize is the smallest bucket: every plaintext of at
	// most this many bytes is padded to it.
	MediaMinPaddedSize = 4 << 10
	// MediaHeaderSize and MediaTagSize are the ciphertext's header and
	// the AEAD tag of each chunk.
	MediaHeaderSize = 8
	MediaTagSize    = 16
)

// mediaBuckets lists MediaMinPaddedSize and then, in increasing order,
// every value floor(1.05^k) above it, up to the first one at or above
// MediaMaxSize. The values are computed exactly, as floor(21^k / 20^k)
// with math/big, so that every implementation finds the same buckets;
// floating-point pow and log may be off by one near a boundary.
var mediaBuckets = sync.OnceValue(func() []int64 {
	list := []int64{MediaMinPaddedSize}
	num, den := big.NewInt(1), big.NewInt(1)
	twentyOne, twenty := big.NewInt(21), big.NewInt(20)
	var q big.Int
	for list[len(list)-1] < MediaMaxSize {
		num.Mul(num, twentyOne)
		den.Mul(den, twenty)
		if v := q.Quo(num, den).Int64(); v > list[len(list)-1] {
			list = append(list, v)
		}
	}
	return list
})

// MediaPaddedSize returns the bucket a plaintext of n bytes is padded to:
// MediaMinPaddedSize (4 KiB) for n up to 4 KiB, and otherwise the smallest
// value of the form floor(1.05^k), k an integer, that is at least n — the
// attachment buckets of Signal, at most 5% above n. It is monotonic and
// never below n. It returns -1 when n is negative or above MediaMaxSize.
func MediaPaddedSize(n int64) int64 {
	if n < 0 || n > MediaMaxSize {
		return -1
	}
	b := mediaBuckets()
	i, _ := slices.BinarySearch(b, n)
	return b[i]
}

// MediaCiphertextSize returns the exact size of the ciphertext of a
// plaintext of n bytes: the header, the padded plaintext, and a tag per
// chunk. It returns -1 when n is negative or above MediaMaxSize.
func MediaCiphertextSize(n int64) int64 {
	p := MediaPaddedSize(n)
	if p < 0 {
		return -1
	}
	return MediaHeaderSize + p + MediaTagSize*((p+MediaChunkSize-1)/MediaChunkSize)
}
