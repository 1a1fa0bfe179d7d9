package media_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/pigeonhole/pigeonhole/relay/client/media"
)

var update = flag.Bool("update", false, "rewrite spec/testdata/vectors/media.json")

// vector is spec/testdata/vectors/media.json. The plaintext is not stored: byte i of
// it is i mod 251.
type vector struct {
	Description      string   `json:"description"`
	Key              string   `json:"key"`
	Size             int64    `json:"size"`
	PaddedSize       int64    `json:"padded_size"`
	CiphertextSize   int64    `json:"ciphertext_size"`
	PlaintextSHA256  string   `json:"plaintext_sha256"`
	Digest           string   `json:"digest"`
	CiphertextFirst  string   `json:"ciphertext_first_64"`
	CiphertextLast   string   `json:"ciphertext_last_64"`
	ChunkTags        []string `json:"chunk_tags"`
	AdditionalData   string   `json:"additional_data"`
	FinalChunkNonce  string   `json:"final_chunk_nonce"`
	PlaintextPattern string   `json:"plaintext_pattern"`
}

const vectorPath = "../../../spec/testdata/vectors/media.json"

// vectorPlaintext returns n bytes, byte i being i mod 251.
func vectorPlaintext(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i % 251)
	}
	return p
}

// refNonce is the nonce of FORMAT.md: 11-byte big-endian i, then flag.
func refNonce(i int, flag byte) []byte {
	n := make([]byte, 12)
	binary.BigEndian.PutUint64(n[3:11], uint64(i))
	n[11] = flag
	return n
}

// refAD is the additional data of FORMAT.md for a file of size bytes.
func refAD(size int64) []byte {
	return binary.BigEndian.AppendUint64([]byte("PHMEDIA\x01"), uint64(size))
}

// refEncrypt is FORMAT.md written out on whole buffers, independently of
// the streaming code, for a file of size bytes whose padded stream starts
// with pt; flag(i, last) chooses each chunk's flag byte. Tests build bad
// ciphertexts with a pt longer than size or wrong flags.
func refEncrypt(t testing.TB, pt []byte, size int64, key []byte, padded int64, flag func(i, last int) byte) []byte {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	stream := make([]byte, padded)
	copy(stream, pt)
	ad := refAD(size)
	out := []byte("PHMEDIA\x01")
	last := (len(stream) - 1) / media.ChunkSize
	for i := 0; i <= last; i++ {
		chunk := stream[i*media.ChunkSize : min((i+1)*media.ChunkSize, len(stream))]
		out = aead.Seal(out, refNonce(i, flag(i, last)), chunk, ad)
	}
	return out
}

// rightFlags is the flag rule of FORMAT.md.
func rightFlags(i, last int) byte {
	if i == last {
		return 1
	}
	return 0
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func makeVector(t *testing.T) vector {
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	const size = 70000
	pt := vectorPlaintext(size)
	var ct bytes.Buffer
	digest, err := media.Encrypt(&ct, bytes.NewReader(pt), size, key)
	if err != nil {
		t.Fatal(err)
	}
	c := ct.Bytes()
	if ref := refEncrypt(t, pt, size, key, media.PaddedSize(size), rightFlags); !bytes.Equal(c, ref) {
		t.Fatal("Encrypt differs from the reference construction")
	}
	var tags []string
	for off := 8; off < len(c); off += media.ChunkSize + 16 {
		end := min(off+media.ChunkSize+16, len(c))
		tags = append(tags, hex.EncodeToString(c[end-16:end]))
	}
	padded := media.PaddedSize(size)
	chunks := int((padded + media.ChunkSize - 1) / media.ChunkSize)
	return vector{
		Description: "media v1 test vector: AES-256-GCM STREAM, 64 KiB chunks. " +
			"The plaintext is not stored; regenerate it from plaintext_pattern.",
		PlaintextPattern: "byte i is i mod 251, for i in [0, size)",
		Key:              hex.EncodeToString(key),
		Size:             size,
		PaddedSize:       padded,
		CiphertextSize:   int64(len(c)),
		PlaintextSHA256:  sha(pt),
		Digest:           hex.EncodeToString(digest),
		CiphertextFirst:  hex.EncodeToString(c[:64]),
		CiphertextLast:   hex.EncodeToString(c[len(c)-64:]),
		ChunkTags:        tags,
		AdditionalData:   hex.EncodeToString(refAD(size)),
		FinalChunkNonce:  hex.EncodeToString(refNonce(chunks-1, 1)),
	}
}

// TestVector regenerates spec/testdata/vectors/media.json and compares; run with
// -update to rewrite it after a deliberate format change.
func TestVector(t *testing.T) {
	got := makeVector(t)
	if *update {
		b, err := json.MarshalIndent(got, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.FromSlash(vectorPath), append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(filepath.FromSlash(vectorPath))
	if err != nil {
		t.Fatal(err)
	}
	var want vector
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(want)
	if !bytes.Equal(gj, wj) {
		t.Fatalf("vector changed:\n got %s\nwant %s", gj, wj)
	}
	if got.CiphertextSize != media.CiphertextSize(got.Size) {
		t.Fatalf("CiphertextSize(%d) = %d, ciphertext is %d", got.Size, media.CiphertextSize(got.Size), got.CiphertextSize)
	}
}

// TestVectorDecrypts decrypts the vector's ciphertext, rebuilt from the
// reference construction, with the stored key, size and digest.
func TestVectorDecrypts(t *testing.T) {
	b, err := os.ReadFile(filepath.FromSlash(vectorPath))
	if err != nil {
		t.Fatal(err)
	}
	var v vector
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	key, _ := hex.DecodeString(v.Key)
	digest, _ := hex.DecodeString(v.Digest)
	pt := vectorPlaintext(int(v.Size))
	ct := refEncrypt(t, pt, v.Size, key, v.PaddedSize, rightFlags)
	if sha(ct) != v.Digest {
		t.Fatal("reference ciphertext does not match the vector's digest")
	}
	var out bytes.Buffer
	if err := media.Decrypt(&out, bytes.NewReader(ct), v.Size, key, digest); err != nil {
		t.Fatal(err)
	}
	if sha(out.Bytes()) != v.PlaintextSHA256 {
		t.Fatal("decrypted vector differs")
	}
}
