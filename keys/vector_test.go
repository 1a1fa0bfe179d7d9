package keys_test

import (
	"bytes"
	"crypto/mlkem"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"go.mau.fi/libsignal/ecc"

	"github.com/pigeonhole/pigeonhole/keys"
)

var updateVectors = flag.Bool("update", false, "rewrite spec/testdata/vectors/kem_prekey.json")

// kemVector is spec/testdata/vectors/kem_prekey.json.
type kemVector struct {
	Description     string `json:"description"`
	KemSeed         string `json:"kem_seed"`
	KemPublicKey    string `json:"kem_public_key"`
	IdentityPrivate string `json:"identity_private"`
	IdentityPublic  string `json:"identity_public"`
	Signature       string `json:"signature"`
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestVectorKemPreKey: the KEM prekey vector's encoded public key is
// 0x0A and the ML-KEM-1024 encapsulation key crypto/mlkem derives from its
// seed; its signature by the identity key (xeddsa.json's) is accepted by
// the directory's check, and refused with any bit flipped, with the
// Kyber1024 type byte, or over a changed key.
func TestVectorKemPreKey(t *testing.T) {
	dir := filepath.Join("..", "spec", "testdata", "vectors")
	raw, err := os.ReadFile(filepath.Join(dir, "xeddsa.json"))
	if err != nil {
		t.Fatal(err)
	}
	var x struct {
		IdentityPrivate string `json:"identity_private"`
		IdentityPublic  string `json:"identity_public"`
	}
	if err := json.Unmarshal(raw, &x); err != nil {
		t.Fatal(err)
	}
	seed := make([]byte, mlkem.SeedSize)
	for i := range seed {
		seed[i] = byte(0x40 + i)
	}
	dk, err := mlkem.NewDecapsulationKey1024(seed)
	if err != nil {
		t.Fatal(err)
	}
	pub := append([]byte{keys.KemKeyType}, dk.EncapsulationKey().Bytes()...)
	fresh := kemVector{
		Description:     "an ML-KEM-1024 KEM prekey: public key = 0x0a (libsignal's kem::KeyType::MLKEM1024) followed by the 1568-byte encapsulation key of crypto/mlkem's NewDecapsulationKey1024(kem_seed); signature = XEdDSA by the identity key (the one in xeddsa.json) over the 1569 bytes; signatures are randomized, so verify, do not compare",
		KemSeed:         hex.EncodeToString(seed),
		KemPublicKey:    hex.EncodeToString(pub),
		IdentityPrivate: x.IdentityPrivate,
		IdentityPublic:  x.IdentityPublic,
	}
	path := filepath.Join(dir, "kem_prekey.json")
	if *updateVectors {
		sig := ecc.CalculateSignature(ecc.NewDjbECPrivateKey([32]byte(unhex(t, x.IdentityPrivate))), pub)
		fresh.Signature = hex.EncodeToString(sig[:])
		out, err := json.MarshalIndent(fresh, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(out, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err = os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var v kemVector
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	sigHex := v.Signature
	v.Signature, fresh.Signature = "", ""
	if v != fresh {
		t.Fatalf("kem_prekey.json's inputs differ from the derivation (run with -update after an intended change)")
	}
	if len(pub) != keys.KemPublicKeySize || keys.KemPublicKeySize != 1569 {
		t.Fatalf("encoded key is %d bytes", len(pub))
	}
	identity := unhex(t, v.IdentityPublic)
	sig := unhex(t, sigHex)
	k := keys.KemPreKey{ID: 1000, PublicKey: pub, Signature: sig}
	if err := keys.VerifyKemLastResort(identity, k); err != nil {
		t.Fatalf("the vector's signature is refused: %v", err)
	}
	for i := range len(sig) * 8 {
		bad := bytes.Clone(sig)
		bad[i/8] ^= 1 << (i % 8)
		if err := keys.VerifyKemLastResort(identity, keys.KemPreKey{PublicKey: pub, Signature: bad}); !errors.Is(err, keys.ErrBadSignature) {
			t.Fatalf("signature with bit %d flipped: %v", i, err)
		}
	}
	kyber := append([]byte{0x08}, pub[1:]...)
	if err := keys.VerifyKemLastResort(identity, keys.KemPreKey{PublicKey: kyber, Signature: sig}); !errors.Is(err, keys.ErrInvalidKey) {
		t.Errorf("Kyber1024 type byte: %v", err)
	}
	changed := bytes.Clone(pub)
	changed[100] ^= 1
	if err := keys.VerifyKemLastResort(identity, keys.KemPreKey{PublicKey: changed, Signature: sig}); err == nil {
		t.Error("the signature verifies over a changed key")
	}
}
