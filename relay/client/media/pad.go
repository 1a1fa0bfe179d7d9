package media

import (
	"math/big"
	"slices"
	"sync"
)

// MinPaddedSize is the smallest bucket: every plaintext of at most this
// many bytes is padded to it.
const MinPaddedSize = 4 << 10

// buckets lists MinPaddedSize and then, in increasing order, every value
// floor(1.05^k) above it, up to the first one at or above MaxSize. The
// values are computed exactly, as floor(21^k / 20^k) with math/big, so
// that every implementation finds the same buckets; floating-point pow
// and log may be off by one near a boundary.
var buckets = sync.OnceValue(func() []int64 {
	list := []int64{MinPaddedSize}
	num, den := big.NewInt(1), big.NewInt(1)
	twentyOne, twenty := big.NewInt(21), big.NewInt(20)
	var q big.Int
	for list[len(list)-1] < MaxSize {
		num.Mul(num, twentyOne)
		den.Mul(den, twenty)
		if v := q.Quo(num, den).Int64(); v > list[len(list)-1] {
			list = append(list, v)
		}
	}
	return list
})

// PaddedSize returns the bucket a plaintext of n bytes is padded to:
// MinPaddedSize (4 KiB) for n up to 4 KiB, and otherwise the smallest
// value of the form floor(1.05^k), k an integer, that is at least n — the
// attachment buckets of Signal, at most 5% above n. It is monotonic and
// never below n. It returns -1 when n is negative or above MaxSize.
func PaddedSize(n int64) int64 {
	if n < 0 || n > MaxSize {
		return -1
	}
	b := buckets()
	i, _ := slices.BinarySearch(b, n)
	return b[i]
}

// CiphertextSize returns the exact size of the ciphertext of a plaintext
// of n bytes: the header, the padded plaintext, and a tag per chunk. It
// returns -1 when n is negative or above MaxSize.
func CiphertextSize(n int64) int64 {
	p := PaddedSize(n)
	if p < 0 {
		return -1
	}
	return headerSize + p + tagSize*numChunks(p)
}

// numChunks returns the number of chunks of a padded plaintext of p > 0
// bytes.
func numChunks(p int64) int64 {
	return (p + ChunkSize - 1) / ChunkSize
}
