package e2e_test

// Sealed sender v1 test vectors (spec/testdata/vectors/sealed.json), derived by hand
// from Signal's published description (signal.org/blog/sealed-sender;
// the pseudocode of libsignal's rust/protocol/src/sealed_sender.rs) with
// fixed identity, ephemeral and server keys. The reference here shares
// no code with sealed.go: X25519 from golang.org/x/crypto/curve25519
// (production: crypto/ecdh), HKDF written out from RFC 5869 with
// crypto/hmac (production: crypto/hkdf), and AES-CTR as a hand-run
// counter over crypto/aes blocks (production: crypto/cipher's CTR). The
// test checks the file against the reference, then the production seal
// and open against the file, and that every flipped byte is refused.

import (
	"bytes"
	"crypto/aes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
	"github.com/pigeonhole/pigeonhole/spec"
)

// sealedVector is spec/testdata/vectors/sealed.json. Keys and bytes are hex; public
// keys are in Signal's 33-byte encoding (0x05 || X25519).
type sealedVector struct {
	Description        string `json:"description"`
	RecipientIdentity  string `json:"recipient_identity_private"`
	RecipientPublic    string `json:"recipient_identity_public"`
	SenderIdentity     string `json:"sender_identity_private"`
	SenderPublic       string `json:"sender_identity_public"`
	Ephemeral          string `json:"ephemeral_private"`
	EphemeralPublic    string `json:"ephemeral_public"`
	ServerSeed         string `json:"server_key_seed"`
	ServerPublic       string `json:"server_key_public"`
	KeyID              uint32 `json:"server_key_id"`
	SenderAccount      string `json:"sender_account_id"`
	SenderDevice       uint32 `json:"sender_device_id"`
	ExpiresMs          int64  `json:"expires_ms"`
	CertificateBody    string `json:"certificate_body"`
	CertificateSig     string `json:"certificate_signature"`
	Certificate        string `json:"sender_certificate"`
	SignalType         uint32 `json:"signal_type"`
	SignalContent      string `json:"signal_content"`
	Plaintext          string `json:"sealed_content"`
	EphemeralShared    string `json:"ephemeral_shared_secret"`
	EphemeralSalt      string `json:"ephemeral_salt"`
	ChainKey           string `json:"chain_key"`
	EphemeralCipherKey string `json:"ephemeral_cipher_key"`
	EphemeralMACKey    string `json:"ephemeral_mac_key"`
	EncryptedStatic    string `json:"encrypted_static"`
	StaticShared       string `json:"static_shared_secret"`
	StaticSalt         string `json:"static_salt"`
	StaticCipherKey    string `json:"static_cipher_key"`
	StaticMACKey       string `json:"static_mac_key"`
	EncryptedMessage   string `json:"encrypted_message"`
	Sealed             string `json:"sealed"`
}

const sealedVectorFile = vectorDir + "/sealed.json"

// refHKDFSalt is HKDF-SHA-256 (RFC 5869) with a salt and an empty info.
func refHKDFSalt(ikm, salt []byte, n int) []byte {
	ext := hmac.New(sha256.New, salt)
	ext.Write(ikm)
	prk := ext.Sum(nil)
	var okm, prev []byte
	for i := byte(1); len(okm) < n; i++ {
		m := hmac.New(sha256.New, prk)
		m.Write(prev)
		m.Write([]byte{i})
		prev = m.Sum(nil)
		okm = append(okm, prev...)
	}
	return okm[:n]
}

// refCTRHMAC is AES-256 in counter mode from a zero 16-byte counter block
// (its last 4 bytes a big-endian block counter, as libsignal's Ctr32BE),
// then HMAC-SHA256 over the ciphertext cut to 10 bytes.
func refCTRHMAC(t *testing.T, cipherKey, macKey, plain []byte) []byte {
	t.Helper()
	b, err := aes.NewCipher(cipherKey)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, len(plain))
	var ctr, ks [16]byte
	for i := 0; i < len(plain); i += 16 {
		binary.BigEndian.PutUint32(ctr[12:], uint32(i/16))
		b.Encrypt(ks[:], ctr[:])
		for j := i; j < len(plain) && j < i+16; j++ {
			out[j] = plain[j] ^ ks[j-i]
		}
	}
	m := hmac.New(sha256.New, macKey)
	m.Write(out)
	return append(out, m.Sum(nil)[:10]...)
}

func refSealed(t *testing.T) sealedVector {
	t.Helper()
	rPriv, sPriv, ePriv := vecCurvePrivate(0x11), vecCurvePrivate(0x22), vecCurvePrivate(0x33)
	rPub, sPub, ePub := refPublic(t, rPriv), refPublic(t, sPriv), refPublic(t, ePriv)
	seed := vecSeq(0x44, 32)
	server := ed25519.NewKeyFromSeed(seed)
	account := vecSeq(0x55, 16)
	body, err := proto.MarshalOptions{Deterministic: true}.Marshal(&spec.SenderCertificateBody{
		AccountId: account, DeviceId: 2, IdentityKey: sPub, ExpiresMs: 1_900_000_000_000, KeyId: 7,
	})
	if err != nil {
		t.Fatal(err)
	}
	signed := append([]byte("pigeonhole/1 sender certificate\x00"), body...)
	sig := ed25519.Sign(server, signed)
	cert, err := proto.Marshal(&spec.SenderCertificate{Certificate: body, Signature: sig})
	if err != nil {
		t.Fatal(err)
	}
	signal := []byte("a Signal ciphertext stands here")
	plain, err := proto.Marshal(&spec.SealedContent{Type: 2, SenderCertificate: cert, Content: signal})
	if err != nil {
		t.Fatal(err)
	}

	eShared := refX25519(t, ePriv, rPub[1:])
	eSalt := append(append([]byte("UnidentifiedDelivery"), rPub...), ePub...)
	ek := refHKDFSalt(eShared, eSalt, 96)
	encStatic := refCTRHMAC(t, ek[32:64], ek[64:], sPub)
	sShared := refX25519(t, sPriv, rPub[1:])
	sSalt := append(append([]byte{}, ek[:32]...), encStatic...)
	sk := refHKDFSalt(sShared, sSalt, 96)
	encMsg := refCTRHMAC(t, sk[32:64], sk[64:], plain)
	// SealedMessage, fields 1, 2, 3 in order, each length-delimited.
	var outer []byte
	for i, f := range [][]byte{ePub, encStatic, encMsg} {
		outer = append(outer, byte((i+1)<<3|2))
		outer = binary.AppendUvarint(outer, uint64(len(f)))
		outer = append(outer, f...)
	}
	sealed := append([]byte{0x11}, outer...)

	h := hex.EncodeToString
	return sealedVector{
		Description:       "sealed sender v1 from a fixed ephemeral key: the message layer carries a SealedContent with a sender certificate under server key 7",
		RecipientIdentity: h(rPriv), RecipientPublic: h(rPub),
		SenderIdentity: h(sPriv), SenderPublic: h(sPub),
		Ephemeral: h(ePriv), EphemeralPublic: h(ePub),
		ServerSeed: h(seed), ServerPublic: h(server.Public().(ed25519.PublicKey)), KeyID: 7,
		SenderAccount: h(account), SenderDevice: 2, ExpiresMs: 1_900_000_000_000,
		CertificateBody: h(body), CertificateSig: h(sig), Certificate: h(cert),
		SignalType: 2, SignalContent: h(signal), Plaintext: h(plain),
		EphemeralShared: h(eShared), EphemeralSalt: h(eSalt),
		ChainKey: h(ek[:32]), EphemeralCipherKey: h(ek[32:64]), EphemeralMACKey: h(ek[64:]),
		EncryptedStatic: h(encStatic),
		StaticShared:    h(sShared), StaticSalt: h(sSalt),
		StaticCipherKey: h(sk[32:64]), StaticMACKey: h(sk[64:]),
		EncryptedMessage: h(encMsg),
		Sealed:           h(sealed),
	}
}

func TestVectorSealed(t *testing.T) {
	fresh := refSealed(t)
	if *updateVectors {
		b, err := json.MarshalIndent(fresh, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(sealedVectorFile, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(sealedVectorFile)
	if err != nil {
		t.Fatal(err)
	}
	var v sealedVector
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	if v != fresh {
		t.Fatalf("vector differs from the reference derivation:\n got %+v\nwant %+v", v, fresh)
	}
	u := func(s string) []byte { return unhex(t, s) }

	sealed, err := e2e.SealV1(u(v.SenderIdentity), u(v.SenderPublic), u(v.RecipientPublic), u(v.Ephemeral), u(v.Plaintext))
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(sealed) != v.Sealed {
		t.Fatalf("production seal\n %x\nwant %s", sealed, v.Sealed)
	}
	from, plain, err := e2e.OpenV1(u(v.RecipientIdentity), u(v.RecipientPublic), u(v.Sealed))
	if err != nil || hex.EncodeToString(from) != v.SenderPublic || hex.EncodeToString(plain) != v.Plaintext {
		t.Fatalf("production open: sender %x, plaintext %x, %v", from, plain, err)
	}
	trusted := e2e.ServerKeys{v.KeyID: u(v.ServerPublic)}
	body, err := e2e.VerifySenderCertificate(u(v.Certificate), trusted, unixMilli(v.ExpiresMs-1))
	if err != nil || hex.EncodeToString(body.AccountId) != v.SenderAccount || body.DeviceId != v.SenderDevice {
		t.Fatalf("the vector's certificate: %v, %v", body, err)
	}
	// Every flipped byte is refused (the version byte, the framing, a
	// key or a tag).
	raw := u(v.Sealed)
	for i := range raw {
		bad := bytes.Clone(raw)
		bad[i] ^= 0x01
		if _, _, err := e2e.OpenV1(u(v.RecipientIdentity), u(v.RecipientPublic), bad); err == nil {
			t.Fatalf("a flipped byte %d opened", i)
		}
	}
	// Another recipient's identity does not open it.
	other := vecCurvePrivate(0x66)
	if _, _, err := e2e.OpenV1(other, refPublic(t, other), raw); err == nil {
		t.Fatal("another identity opened the message")
	}
}

func unixMilli(ms int64) time.Time { return time.UnixMilli(ms) }
