package e2e_test

// PQXDH test vectors (spec/testdata/vectors/pqxdh.json), derived by hand from Signal's
// PQXDH specification (https://signal.org/docs/specifications/pqxdh/,
// sections 2.2 and 3.3) with fixed private keys and fixed KEM
// randomness. The reference here shares no code with the production
// derivation in pqxdh.go: X25519 from golang.org/x/crypto/curve25519
// (production: crypto/ecdh), HKDF written out from RFC 5869 with
// crypto/hmac (production: crypto/hkdf), and ML-KEM-1024 key generation
// and derandomized encapsulation from cloudflare/circl (production:
// crypto/mlkem, whose encapsulation is random). The test checks the
// vector file against the reference, and the production derivation, on
// both sides, against the vector.

import (
	"bytes"
	"crypto/hmac"
	"crypto/mlkem"
	"crypto/mlkem/mlkemtest"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/cloudflare/circl/kem/mlkem/mlkem1024"
	"golang.org/x/crypto/curve25519"

	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
)

// pqxdhVector is one case of spec/testdata/vectors/pqxdh.json. Keys are hex; public
// keys are the 32 raw X25519 bytes (Signal's encoding puts 0x05 in
// front).
type pqxdhVector struct {
	Description      string `json:"description"`
	AliceIdentity    string `json:"alice_identity_private"`
	AliceIdentityPub string `json:"alice_identity_public"`
	AliceBase        string `json:"alice_base_private"`
	AliceBasePub     string `json:"alice_base_public"`
	BobIdentity      string `json:"bob_identity_private"`
	BobIdentityPub   string `json:"bob_identity_public"`
	BobSigned        string `json:"bob_signed_prekey_private"`
	BobSignedPub     string `json:"bob_signed_prekey_public"`
	BobOneTime       string `json:"bob_one_time_prekey_private,omitempty"`
	BobOneTimePub    string `json:"bob_one_time_prekey_public,omitempty"`
	KEMSeed          string `json:"kem_seed"`
	KEMPublicSHA256  string `json:"kem_encapsulation_key_sha256"`
	KEMRandomness    string `json:"kem_encapsulation_randomness"`
	KEMCiphertext    string `json:"kem_ciphertext"`
	KEMSharedSecret  string `json:"kem_shared_secret"`
	DH1              string `json:"dh1"`
	DH2              string `json:"dh2"`
	DH3              string `json:"dh3"`
	DH4              string `json:"dh4,omitempty"`
	Info             string `json:"hkdf_info"`
	IKM              string `json:"hkdf_ikm"`
	RootKey          string `json:"root_key"`
	ChainKey         string `json:"chain_key"`
}

const pqxdhVectorFile = vectorDir + "/pqxdh.json"

// refX25519 is X25519 from x/crypto (which clamps the scalar).
func refX25519(t *testing.T, priv, pub []byte) []byte {
	t.Helper()
	out, err := curve25519.X25519(priv, pub)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func refBase(t *testing.T, priv []byte) []byte {
	t.Helper()
	return refX25519(t, priv, curve25519.Basepoint)
}

// refHKDF is HKDF-SHA-256 (RFC 5869) written out: PRK = HMAC(salt, IKM),
// T(i) = HMAC(PRK, T(i-1) || info || i), here with the all-zero salt of
// hash length that the PQXDH specification asks for.
func refHKDF(ikm []byte, info string, n int) []byte {
	ext := hmac.New(sha256.New, make([]byte, sha256.Size))
	ext.Write(ikm)
	prk := ext.Sum(nil)
	var okm, prev []byte
	for i := byte(1); len(okm) < n; i++ {
		m := hmac.New(sha256.New, prk)
		m.Write(prev)
		m.Write([]byte(info))
		m.Write([]byte{i})
		prev = m.Sum(nil)
		okm = append(okm, prev...)
	}
	return okm[:n]
}

// refPQXDH derives one vector from its private inputs.
func refPQXDH(t *testing.T, desc string, withOneTime bool) pqxdhVector {
	t.Helper()
	ikA, ekA := vecCurvePrivate(0x10), vecCurvePrivate(0x20)
	ikB, spkB, opkB := vecCurvePrivate(0x30), vecCurvePrivate(0x40), vecCurvePrivate(0x50)
	kemSeed, kemRand := vecSeq(0x60, 64), vecSeq(0xa0, 32)

	pk, _ := mlkem1024.NewKeyFromSeed(kemSeed)
	ek := make([]byte, mlkem1024.PublicKeySize)
	pk.Pack(ek)
	ct := make([]byte, mlkem1024.CiphertextSize)
	ss := make([]byte, mlkem1024.SharedKeySize)
	pk.EncapsulateTo(ct, ss, kemRand)
	ekHash := sha256.Sum256(ek)

	// Section 3.3: DH1 = DH(IK_A, SPK_B), DH2 = DH(EK_A, IK_B),
	// DH3 = DH(EK_A, SPK_B), DH4 = DH(EK_A, OPK_B).
	dh1 := refX25519(t, ikA, refBase(t, spkB))
	dh2 := refX25519(t, ekA, refBase(t, ikB))
	dh3 := refX25519(t, ekA, refBase(t, spkB))
	ikm := append(bytes.Repeat([]byte{0xFF}, 32), dh1...)
	ikm = append(append(ikm, dh2...), dh3...)
	var dh4 []byte
	if withOneTime {
		dh4 = refX25519(t, ekA, refBase(t, opkB))
		ikm = append(ikm, dh4...)
	}
	ikm = append(ikm, ss...)
	// Signal's label (rust/protocol/src/pqxdh.rs), 64 bytes: root key,
	// then chain key.
	info := "WhisperText_X25519_SHA-256_CRYSTALS-KYBER-1024"
	okm := refHKDF(ikm, info, 64)

	h := hex.EncodeToString
	v := pqxdhVector{
		Description:      desc,
		AliceIdentity:    h(ikA),
		AliceIdentityPub: h(refBase(t, ikA)),
		AliceBase:        h(ekA),
		AliceBasePub:     h(refBase(t, ekA)),
		BobIdentity:      h(ikB),
		BobIdentityPub:   h(refBase(t, ikB)),
		BobSigned:        h(spkB),
		BobSignedPub:     h(refBase(t, spkB)),
		KEMSeed:          h(kemSeed),
		KEMPublicSHA256:  h(ekHash[:]),
		KEMRandomness:    h(kemRand),
		KEMCiphertext:    h(ct),
		KEMSharedSecret:  h(ss),
		DH1:              h(dh1),
		DH2:              h(dh2),
		DH3:              h(dh3),
		Info:             info,
		IKM:              h(ikm),
		RootKey:          h(okm[:32]),
		ChainKey:         h(okm[32:]),
	}
	if withOneTime {
		v.BobOneTime, v.BobOneTimePub, v.DH4 = h(opkB), h(refBase(t, opkB)), h(dh4)
	}
	return v
}

func TestVectorPQXDH(t *testing.T) {
	fresh := []pqxdhVector{
		refPQXDH(t, "PQXDH with a one-time prekey: HKDF-SHA-256(salt 32 zero bytes, ikm 0xFF*32 || DH1 || DH2 || DH3 || DH4 || SS, info) -> root key || chain key; ML-KEM-1024 key from kem_seed (d || z), encapsulation derandomized with kem_encapsulation_randomness (FIPS 203 ML-KEM.Encaps_internal)", true),
		refPQXDH(t, "PQXDH without a one-time prekey: ikm 0xFF*32 || DH1 || DH2 || DH3 || SS", false),
	}
	if *updateVectors {
		b, err := json.MarshalIndent(fresh, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(pqxdhVectorFile, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(filepath.FromSlash(pqxdhVectorFile))
	if err != nil {
		t.Fatal(err)
	}
	var vs []pqxdhVector
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) != len(fresh) {
		t.Fatalf("%d vectors, want %d", len(vs), len(fresh))
	}
	for i, v := range vs {
		t.Run(v.Description[:20], func(t *testing.T) {
			if v != fresh[i] {
				t.Fatalf("vector differs from the reference derivation:\n got %+v\nwant %+v", v, fresh[i])
			}
			checkPQXDHVector(t, v)
		})
	}
}

// checkPQXDHVector runs the production code on the vector's inputs.
func checkPQXDHVector(t *testing.T, v pqxdhVector) {
	u := func(s string) []byte {
		if s == "" {
			return nil
		}
		return unhex(t, s)
	}
	// Go's ML-KEM agrees with circl's on the key from the seed and, with
	// the same randomness, on the encapsulation.
	dk, err := mlkem.NewDecapsulationKey1024(u(v.KEMSeed))
	if err != nil {
		t.Fatal(err)
	}
	if h := sha256.Sum256(dk.EncapsulationKey().Bytes()); hex.EncodeToString(h[:]) != v.KEMPublicSHA256 {
		t.Fatal("crypto/mlkem derives another encapsulation key from the seed")
	}
	ss, ct, err := mlkemtest.Encapsulate1024(dk.EncapsulationKey(), u(v.KEMRandomness))
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(ct) != v.KEMCiphertext || hex.EncodeToString(ss) != v.KEMSharedSecret {
		t.Fatal("crypto/mlkem's derandomized encapsulation differs from the vector")
	}

	rk, ck, err := e2e.PQXDHInitiatorKeys(u(v.AliceIdentity), u(v.AliceBase), u(v.BobIdentityPub), u(v.BobSignedPub), u(v.BobOneTimePub), u(v.KEMSharedSecret))
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(rk) != v.RootKey || hex.EncodeToString(ck) != v.ChainKey {
		t.Errorf("initiator derives root %x chain %x\nwant root %s chain %s", rk, ck, v.RootKey, v.ChainKey)
	}
	rk, ck, ss, err = e2e.PQXDHResponderKeys(u(v.BobIdentity), u(v.BobSigned), u(v.BobOneTime), u(v.AliceIdentityPub), u(v.AliceBasePub), u(v.KEMSeed), u(v.KEMCiphertext))
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(ss) != v.KEMSharedSecret {
		t.Errorf("responder decapsulates %x, want %s", ss, v.KEMSharedSecret)
	}
	if hex.EncodeToString(rk) != v.RootKey || hex.EncodeToString(ck) != v.ChainKey {
		t.Errorf("responder derives root %x chain %x\nwant root %s chain %s", rk, ck, v.RootKey, v.ChainKey)
	}
	// A one-bit change of the KEM secret changes both keys.
	bad := u(v.KEMSharedSecret)
	bad[0] ^= 1
	rk, ck, err = e2e.PQXDHInitiatorKeys(u(v.AliceIdentity), u(v.AliceBase), u(v.BobIdentityPub), u(v.BobSignedPub), u(v.BobOneTimePub), bad)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(rk) == v.RootKey || hex.EncodeToString(ck) == v.ChainKey {
		t.Error("the KEM secret does not enter the derivation")
	}
}
