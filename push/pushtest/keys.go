package pushtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"strings"
)

// newECKey returns a fresh P-256 key and its .p8 form: a PEM block of type
// "PRIVATE KEY" holding PKCS#8 DER, which is what Apple hands out.
func newECKey() (*ecdsa.PrivateKey, []byte, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, nil, err
	}
	return k, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// newRSAKey returns a fresh RSA 2048 key and its PEM PKCS#8 form, as found
// in the private_key field of a Google service-account JSON file.
func newRSAKey() (*rsa.PrivateKey, []byte, error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, nil, err
	}
	return k, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// randomHex returns n random bytes in lowercase hex.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// randomID returns n random characters from A-Z and 0-9, the alphabet of
// Apple's key and team ids.
func randomID(n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[mrand.IntN(len(alphabet))]
	}
	return string(b)
}

// randomDigits returns n random decimal digits, the first one not zero.
func randomDigits(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('0' + mrand.IntN(10))
	}
	if b[0] == '0' {
		b[0] = '1'
	}
	return string(b)
}

// newUUID returns a random (version 4) UUID in its lowercase text form.
func newUUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// isUUID reports whether s has the 8-4-4-4-12 hex form APNs requires of
// apns-id.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return false
			}
		default:
			if !isHexDigit(s[i]) {
				return false
			}
		}
	}
	return true
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// jws is a compact JWS (a signed JWT) split into its parts. Header and
// Claims are the decoded JSON of the first two segments.
type jws struct {
	Header struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	Claims struct {
		Iss   string      `json:"iss"`
		Aud   string      `json:"aud"`
		Scope string      `json:"scope"`
		Iat   json.Number `json:"iat"`
		Exp   json.Number `json:"exp"`
	}
	signed []byte // header "." claims, the bytes the signature covers
	sig    []byte
}

// parseJWS splits and decodes a compact JWS without checking its signature.
func parseJWS(s string) (*jws, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a compact JWS")
	}
	var j jws
	for i, dst := range []any{&j.Header, &j.Claims} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			return nil, fmt.Errorf("segment %d: %v", i, err)
		}
		d := json.NewDecoder(strings.NewReader(string(raw)))
		d.UseNumber()
		if err := d.Decode(dst); err != nil {
			return nil, fmt.Errorf("segment %d: %v", i, err)
		}
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, fmt.Errorf("signature: %v", err)
	}
	j.signed = []byte(parts[0] + "." + parts[1])
	j.sig = sig
	return &j, nil
}

// verifyES256 checks an ES256 signature: SHA-256, then P-256 ECDSA with the
// signature as the 64 bytes r || s (RFC 7518 section 3.4), not ASN.1.
func (j *jws) verifyES256(pub *ecdsa.PublicKey) bool {
	if j.Header.Alg != "ES256" || len(j.sig) != 64 {
		return false
	}
	h := sha256.Sum256(j.signed)
	r := new(big.Int).SetBytes(j.sig[:32])
	s := new(big.Int).SetBytes(j.sig[32:])
	return ecdsa.Verify(pub, h[:], r, s)
}

// verifyRS256 checks an RS256 signature: RSASSA-PKCS1-v1_5 with SHA-256.
func (j *jws) verifyRS256(pub *rsa.PublicKey) bool {
	if j.Header.Alg != "RS256" {
		return false
	}
	h := sha256.Sum256(j.signed)
	return rsa.VerifyPKCS1v15(pub, crypto.SHA256, h[:], j.sig) == nil
}
