package media_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/pigeonhole/pigeonhole/relay/client/media"
)

// patternReader yields n deterministic pseudo-random bytes without
// holding them.
type patternReader struct {
	n     int64
	state uint64
}

func (r *patternReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), r.n)]
	for i := range p {
		r.state ^= r.state << 13
		r.state ^= r.state >> 7
		r.state ^= r.state << 17
		p[i] = byte(r.state >> 32)
	}
	r.n -= int64(len(p))
	return len(p), nil
}

func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	r.Read(b)
	return b
}

func newKey(t testing.TB) []byte {
	t.Helper()
	k, err := media.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// encrypt returns the ciphertext and digest of pt.
func encrypt(t testing.TB, pt, key []byte) ([]byte, []byte) {
	t.Helper()
	var ct bytes.Buffer
	d, err := media.Encrypt(&ct, bytes.NewReader(pt), int64(len(pt)), key)
	if err != nil {
		t.Fatalf("Encrypt(%d bytes): %v", len(pt), err)
	}
	return ct.Bytes(), d
}

func TestRoundTrip(t *testing.T) {
	sizes := []int{0, 1, 100, 4095, 4096, 4097, media.ChunkSize - 1, media.ChunkSize,
		media.ChunkSize + 1, 2*media.ChunkSize - 1, 2 * media.ChunkSize, 5<<20 + 12345}
	// Bucket boundaries around the first chunk boundaries.
	for _, n := range []int64{4201, media.ChunkSize + 1, 2*media.ChunkSize + 1} {
		b := media.PaddedSize(n)
		sizes = append(sizes, int(b)-1, int(b), int(b)+1)
	}
	key := newKey(t)
	for _, n := range sizes {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			pt := randomBytes(uint64(n), n)
			ct, digest := encrypt(t, pt, key)
			if int64(len(ct)) != media.CiphertextSize(int64(n)) {
				t.Fatalf("ciphertext is %d bytes, CiphertextSize says %d", len(ct), media.CiphertextSize(int64(n)))
			}
			if sum := sha256.Sum256(ct); !bytes.Equal(sum[:], digest) {
				t.Fatal("digest is not the SHA-256 of the ciphertext")
			}
			var out bytes.Buffer
			if err := media.Decrypt(&out, bytes.NewReader(ct), int64(n), key, digest); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), pt) {
				t.Fatal("round trip differs")
			}
		})
	}
}

func TestNewKey(t *testing.T) {
	a, b := newKey(t), newKey(t)
	if len(a) != 32 || bytes.Equal(a, b) {
		t.Fatalf("keys %x and %x", a, b)
	}
}

var errBoom = errors.New("boom")

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errBoom }

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errBoom }

func TestEncryptRejects(t *testing.T) {
	key := newKey(t)
	pt := randomBytes(1, 70000)
	cases := []struct {
		name string
		src  io.Reader
		size int64
		key  []byte
		dst  io.Writer
		want error
	}{
		{"fewer bytes", bytes.NewReader(pt[:69999]), 70000, key, io.Discard, io.ErrUnexpectedEOF},
		{"no bytes", bytes.NewReader(nil), 70000, key, io.Discard, io.ErrUnexpectedEOF},
		{"one more byte", bytes.NewReader(pt), 69999, key, io.Discard, nil},
		{"bytes for size 0", bytes.NewReader(pt), 0, key, io.Discard, nil},
		{"over MaxSize", bytes.NewReader(pt), media.MaxSize + 1, key, io.Discard, nil},
		{"negative size", bytes.NewReader(pt), -1, key, io.Discard, nil},
		{"short key", bytes.NewReader(pt), 70000, key[:16], io.Discard, nil},
		{"read error", failingReader{}, 70000, key, io.Discard, errBoom},
		{"write error", bytes.NewReader(pt), 70000, key, failingWriter{}, errBoom},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := media.Encrypt(c.dst, c.src, c.size, c.key)
			if err == nil {
				t.Fatalf("Encrypt succeeded with digest %x", d)
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("error %v does not wrap %v", err, c.want)
			}
		})
	}
}

func TestEncryptDeterministic(t *testing.T) {
	key := newKey(t)
	pt := randomBytes(2, 100000)
	a, da := encrypt(t, pt, key)
	b, db := encrypt(t, pt, key)
	if !bytes.Equal(a, b) || !bytes.Equal(da, db) {
		t.Fatal("Encrypt is not deterministic given the key")
	}
}

// corruption is a ciphertext, size, key and digest that Decrypt must
// refuse with ErrCorrupt.
type corruption struct {
	name        string
	ct          []byte
	size        int64
	key, digest []byte
}

func TestDecryptRejects(t *testing.T) {
	key := newKey(t)
	const size = 150000 // three chunks, the last short
	pt := randomBytes(3, size)
	pt[size-1] = 0xff // a nonzero last byte, so a smaller size shows in the padding
	ct, digest := encrypt(t, pt, key)
	const sealed = media.ChunkSize + 16
	if len(ct) <= 8+2*sealed {
		t.Fatalf("want three chunks, ciphertext is %d bytes", len(ct))
	}
	cp := func(f func([]byte) []byte) []byte { return f(bytes.Clone(ct)) }
	flip := func(i int) []byte { return cp(func(c []byte) []byte { c[i] ^= 0x01; return c }) }
	var cases []corruption
	add := func(name string, c []byte) {
		cases = append(cases, corruption{name, c, size, key, digest})
	}
	for _, i := range []int{0, 7, 8, 9, 8 + media.ChunkSize - 1, 8 + media.ChunkSize, 8 + sealed - 1,
		8 + sealed, 8 + sealed + 1000, 8 + 2*sealed, len(ct) - 17, len(ct) - 16, len(ct) - 1} {
		add(fmt.Sprintf("flip byte %d", i), flip(i))
	}
	for _, n := range []int{0, 1, 7, 8, 9, 8 + sealed - 1, 8 + sealed, 8 + 2*sealed, len(ct) - 16, len(ct) - 1} {
		add(fmt.Sprintf("truncate to %d", n), ct[:n:n])
	}
	add("append one byte", append(bytes.Clone(ct), 0))
	add("append a tag", append(bytes.Clone(ct), ct[len(ct)-16:]...))
	add("append chunk 1", append(bytes.Clone(ct), ct[8+sealed:8+2*sealed]...))
	add("swap chunks 0 and 1", cp(func(c []byte) []byte {
		copy(c[8:], ct[8+sealed:8+2*sealed])
		copy(c[8+sealed:], ct[8:8+sealed])
		return c
	}))
	add("duplicate chunk 0", cp(func(c []byte) []byte { copy(c[8+sealed:], ct[8:8+sealed]); return c }))
	badDigest := bytes.Clone(digest)
	badDigest[31] ^= 0x80
	cases = append(cases,
		corruption{"wrong key", ct, size, newKey(t), digest},
		corruption{"short key", ct, size, key[:31], digest},
		corruption{"nil key", ct, size, nil, digest},
		corruption{"wrong digest", ct, size, key, badDigest},
		corruption{"short digest", ct, size, key, digest[:31]},
		corruption{"nil digest", ct, size, key, nil},
		corruption{"size - 1", ct, size - 1, key, digest},
		corruption{"size + 1", ct, size + 1, key, digest},
		corruption{"size 0", ct, 0, key, digest},
		corruption{"size of the next bucket", ct, media.PaddedSize(size) + 1, key, digest},
		corruption{"negative size", ct, -1, key, digest},
		corruption{"size over MaxSize", ct, media.MaxSize + 1, key, digest},
		corruption{"size MaxSize", ct, media.MaxSize, key, digest},
		corruption{"size MaxInt64", ct, math.MaxInt64, key, digest},
	)
	// Every chunk well sealed, but with the wrong final flags.
	padded := media.PaddedSize(size)
	chunk0 := func(v byte) func(i, last int) byte {
		return func(i, last int) byte {
			if i == 0 {
				return rightFlags(i, last) | v
			}
			return rightFlags(i, last)
		}
	}
	for name, flag := range map[string]func(i, last int) byte{
		"no final chunk":    func(int, int) byte { return 0 },
		"every chunk final": func(int, int) byte { return 1 },
		"chunk 0 final too": chunk0(1),
		"chunk 0 flag 0x80": chunk0(0x80),
		"final flag 0x02":   func(i, last int) byte { return 2 * rightFlags(i, last) },
	} {
		c := refEncrypt(t, pt, size, key, padded, flag)
		sum := sha256.Sum256(c)
		cases = append(cases, corruption{name, c, size, key, sum[:]})
	}
	// The right key and flags and a matching digest, but another size in
	// the additional data, or nonzero padding.
	for name, c := range map[string][]byte{
		"sealed for size - 1": refEncrypt(t, pt[:size-1], size-1, key, padded, rightFlags),
		"sealed for size + 1": refEncrypt(t, append(bytes.Clone(pt), 0), size+1, key, padded, rightFlags),
		"nonzero padding":     refEncrypt(t, append(bytes.Clone(pt), 0, 0, 1), size, key, padded, rightFlags),
	} {
		sum := sha256.Sum256(c)
		cases = append(cases, corruption{name, c, size, key, sum[:]})
	}
	// A wrong header, with a matching digest.
	hdr := flip(7)
	sum := sha256.Sum256(hdr)
	cases = append(cases, corruption{"version 0 header, matching digest", hdr, size, key, sum[:]})

	if c := refEncrypt(t, pt, size, key, padded, rightFlags); !bytes.Equal(c, ct) {
		t.Fatal("the reference construction differs from Encrypt")
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			err := media.Decrypt(&out, bytes.NewReader(c.ct), c.size, c.key, c.digest)
			if !errors.Is(err, media.ErrCorrupt) {
				t.Fatalf("Decrypt = %v, want ErrCorrupt", err)
			}
			if int64(out.Len()) > c.size && c.size >= 0 {
				t.Fatalf("wrote %d bytes for size %d", out.Len(), c.size)
			}
		})
	}
}

func TestDecryptIOErrors(t *testing.T) {
	key := newKey(t)
	pt := randomBytes(4, 1000)
	ct, digest := encrypt(t, pt, key)
	err := media.Decrypt(io.Discard, io.MultiReader(bytes.NewReader(ct[:100]), failingReader{}), 1000, key, digest)
	if !errors.Is(err, errBoom) || errors.Is(err, media.ErrCorrupt) {
		t.Fatalf("read error: %v", err)
	}
	err = media.Decrypt(failingWriter{}, bytes.NewReader(ct), 1000, key, digest)
	if !errors.Is(err, errBoom) || errors.Is(err, media.ErrCorrupt) {
		t.Fatalf("write error: %v", err)
	}
}

// allBuckets walks PaddedSize from 0 to MaxSize.
func allBuckets() []int64 {
	var list []int64
	for n := int64(0); n <= media.MaxSize; {
		b := media.PaddedSize(n)
		list = append(list, b)
		n = b + 1
	}
	return list
}

func TestPaddedSize(t *testing.T) {
	for n, want := range map[int64]int64{-1: -1, 0: 4096, 1: 4096, 4096: 4096, media.MaxSize + 1: -1, math.MaxInt64: -1, math.MinInt64: -1} {
		if got := media.PaddedSize(n); got != want {
			t.Errorf("PaddedSize(%d) = %d, want %d", n, got, want)
		}
	}
	if media.CiphertextSize(-1) != -1 || media.CiphertextSize(media.MaxSize+1) != -1 {
		t.Error("CiphertextSize accepts a size out of range")
	}
	if got := media.CiphertextSize(0); got != 8+4096+16 {
		t.Errorf("CiphertextSize(0) = %d", got)
	}
	list := allBuckets()
	t.Logf("%d buckets from 0 to MaxSize; PaddedSize(MaxSize) = %d", len(list), list[len(list)-1])
	if len(list) > 300 {
		t.Errorf("%d buckets", len(list))
	}
	if list[len(list)-1] < media.MaxSize {
		t.Errorf("PaddedSize(MaxSize) = %d", list[len(list)-1])
	}
	twentyOne, twenty := big.NewInt(21), big.NewInt(20)
	num, den := big.NewInt(1), big.NewInt(1)
	k := 0
	prev := int64(0)
	for _, b := range list[1:] {
		// b must be floor(1.05^k) for some k, exactly.
		var q big.Int
		for q.Quo(num, den).Int64() < b {
			num.Mul(num, twentyOne)
			den.Mul(den, twenty)
			k++
		}
		if q.Int64() != b {
			t.Fatalf("bucket %d is not floor(1.05^k)", b)
		}
		if f := math.Pow(1.05, float64(k)); math.Abs(f-float64(b)) > 1 {
			t.Fatalf("bucket %d, 1.05^%d = %f", b, k, f)
		}
	}
	for i, b := range list {
		lo := int64(0)
		if i > 0 {
			lo = list[i-1] + 1
		}
		for _, n := range []int64{lo, lo + 1, (lo + b) / 2, b - 1, b} {
			if n < lo || n > b || n > media.MaxSize {
				continue
			}
			p := media.PaddedSize(n)
			if p != b {
				t.Fatalf("PaddedSize(%d) = %d, want bucket %d", n, p, b)
			}
			if p < n || p < prev {
				t.Fatalf("PaddedSize(%d) = %d: below n or not monotonic", n, p)
			}
			if n > 4096 && float64(p) > 1.05*float64(n) {
				t.Fatalf("PaddedSize(%d) = %d: over 5%%", n, p)
			}
			prev = p
		}
	}
	if len(list) > 1 && media.PaddedSize(list[1]+1) <= list[1] {
		t.Fatal("not increasing after the first buckets")
	}
}

// TestConstantMemory encrypts 64 MiB into a pipe that Decrypt reads, and
// checks that the heap allocated meanwhile is far below the file's size.
func TestConstantMemory(t *testing.T) {
	const size = 64 << 20
	key := newKey(t)
	digest, err := media.Encrypt(io.Discard, &patternReader{n: size, state: 1}, size, key)
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.New()
	if _, err := io.Copy(want, &patternReader{n: size, state: 1}); err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := media.Encrypt(pw, &patternReader{n: size, state: 1}, size, key)
		pw.CloseWithError(err)
		done <- err
	}()
	err = media.Decrypt(got, pr, size, key, digest)
	pr.Close()
	if eerr := <-done; eerr != nil {
		t.Fatalf("Encrypt: %v", eerr)
	}
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatalf("Decrypt: %v", err)
	}
	if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Fatal("64 MiB round trip differs")
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("encrypt+decrypt of %d MiB allocated %d bytes (%.1f KiB) in total", size>>20, alloc, float64(alloc)/1024)
	if alloc > 2<<20 {
		t.Fatalf("allocated %d bytes for a %d-byte file", alloc, size)
	}
}

const benchSize = 8 << 20

func BenchmarkEncrypt(b *testing.B) {
	key := newKey(b)
	pt := randomBytes(5, benchSize)
	r := bytes.NewReader(pt)
	b.SetBytes(benchSize)
	for b.Loop() {
		r.Reset(pt)
		if _, err := media.Encrypt(io.Discard, r, benchSize, key); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecrypt(b *testing.B) {
	key := newKey(b)
	ct, digest := encrypt(b, randomBytes(6, benchSize), key)
	r := bytes.NewReader(ct)
	b.SetBytes(benchSize)
	for b.Loop() {
		r.Reset(ct)
		if err := media.Decrypt(io.Discard, r, benchSize, key, digest); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzDecrypt feeds Decrypt hostile ciphertexts and sizes, against the
// seed's digest or the input's own. It must never panic, must refuse
// with ErrCorrupt, and may succeed only on the seed's ciphertext and
// size, giving back the seed's plaintext.
func FuzzDecrypt(f *testing.F) {
	key := bytes.Repeat([]byte{7}, 32)
	pt := []byte("a small attachment for the fuzzer\xff")
	var buf bytes.Buffer
	digest, err := media.Encrypt(&buf, bytes.NewReader(pt), int64(len(pt)), key)
	if err != nil {
		f.Fatal(err)
	}
	valid := buf.Bytes()
	f.Add(valid, int64(len(pt)), false)
	f.Add(valid, int64(len(pt)), true)
	f.Add(valid[:len(valid)-1], int64(len(pt)), true)
	f.Add(valid, int64(len(pt)+1), true)
	f.Add([]byte("PHMEDIA\x01"), int64(0), true)
	f.Fuzz(func(t *testing.T, ct []byte, size int64, ownDigest bool) {
		d := digest
		if ownDigest {
			s := sha256.Sum256(ct)
			d = s[:]
		}
		var out bytes.Buffer
		err := media.Decrypt(&out, bytes.NewReader(ct), size, key, d)
		if err != nil {
			if !errors.Is(err, media.ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if size != int64(len(pt)) || !bytes.Equal(ct, valid) || !bytes.Equal(out.Bytes(), pt) {
			t.Fatalf("accepted size %d, ciphertext %x, giving %q", size, ct, out.Bytes())
		}
	})
}
