package e2e_test

// Test vectors of spec/protocol.md ("Test vectors") for what the reference
// client seals and signs: XEdDSA signatures, the provisioning message and
// its seal, and encrypted device names. Each test recomputes its vector
// with a from-scratch reference (standard library only) and checks the
// e2e code and libsignal against it, so a vector, the reference and the
// code must all agree. Run with -update to rewrite the files after a
// deliberate change (the XEdDSA signature is randomized and is then made
// afresh).

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"go.mau.fi/libsignal/ecc"
	"go.mau.fi/libsignal/provision"

	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
)

var updateVectors = flag.Bool("update", false, "rewrite the vectors in spec/testdata/vectors")

const vectorDir = "../../../spec/testdata/vectors"

// vecSeq returns n bytes start, start+1, ...
func vecSeq(start byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

// vecCurvePrivate returns a clamped Curve25519 private key made of the
// bytes start, start+1, ...
func vecCurvePrivate(start byte) []byte {
	k := vecSeq(start, 32)
	k[0] &= 248
	k[31] &= 127
	k[31] |= 64
	return k
}

// refPublic is the 33-byte Signal public key (0x05 || X25519(priv, 9)).
func refPublic(t *testing.T, priv []byte) []byte {
	t.Helper()
	sk, err := ecdh.X25519().NewPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte{0x05}, sk.PublicKey().Bytes()...)
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("hex %q: %v", s, err)
	}
	return b
}

// loadVector reads spec/testdata/vectors/name into v; with -update it
// first writes fresh (the value the test computed).
func loadVector(t *testing.T, name string, fresh, v any) {
	t.Helper()
	path := filepath.Join(vectorDir, name)
	if *updateVectors {
		b, err := json.MarshalIndent(fresh, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// xeddsaVector is xeddsa.json.
type xeddsaVector struct {
	Description     string `json:"description"`
	IdentityPrivate string `json:"identity_private"`
	IdentityPublic  string `json:"identity_public"`
	Message         string `json:"message"`
	Signature       string `json:"signature"`
}

func key32(b []byte) [32]byte { return [32]byte(b) }

// TestVectorXEdDSA: the signature over a signed prekey's public key
// verifies with libsignal's XEdDSA (what the relay's key directory uses),
// and a signature or message with one bit flipped does not.
func TestVectorXEdDSA(t *testing.T) {
	priv := vecCurvePrivate(0x10)
	pub := refPublic(t, priv)
	msg := refPublic(t, vecCurvePrivate(0x30)) // a signed prekey's public key
	fresh := xeddsaVector{
		Description:     "XEdDSA (Signal) signature by the identity key over the 33 bytes of a signed prekey's public key; signatures are randomized, so verify, do not compare",
		IdentityPrivate: hex.EncodeToString(priv),
		IdentityPublic:  hex.EncodeToString(pub),
		Message:         hex.EncodeToString(msg),
	}
	if *updateVectors {
		sig := ecc.CalculateSignature(ecc.NewDjbECPrivateKey(key32(priv)), msg)
		fresh.Signature = hex.EncodeToString(sig[:])
	}
	var v xeddsaVector
	loadVector(t, "xeddsa.json", fresh, &v)
	if v.IdentityPublic != fresh.IdentityPublic || v.Message != fresh.Message || v.IdentityPrivate != fresh.IdentityPrivate {
		t.Fatalf("xeddsa.json inputs differ from the derivation:\n got %+v\nwant %+v", v, fresh)
	}
	ik, err := ecc.DecodePoint(unhex(t, v.IdentityPublic), 0)
	if err != nil {
		t.Fatal(err)
	}
	sig := unhex(t, v.Signature)
	if len(sig) != 64 {
		t.Fatalf("signature is %d bytes", len(sig))
	}
	if !ecc.VerifySignature(ik, unhex(t, v.Message), [64]byte(sig)) {
		t.Fatal("the vector's signature does not verify")
	}
	for i := range len(sig) * 8 {
		bad := bytes.Clone(sig)
		bad[i/8] ^= 1 << (i % 8)
		if ecc.VerifySignature(ik, unhex(t, v.Message), [64]byte(bad)) {
			t.Errorf("signature with bit %d flipped verifies", i)
		}
	}
	badMsg := unhex(t, v.Message)
	badMsg[1] ^= 1
	if ecc.VerifySignature(ik, badMsg, [64]byte(sig)) {
		t.Error("signature verifies over a changed message")
	}
}

// linkedDevice makes a device that holds the vectors' identity key pair
// and account id.
func linkedDevice(t *testing.T, identityPriv, acct []byte) *e2e.Device {
	t.Helper()
	d, _ := createLinked(t, &e2e.Provisioning{
		IdentityPublic: refPublic(t, identityPriv), IdentityPrivate: identityPriv,
		AccountID: acct, LinkCode: vecSeq(0x90, 16),
	}, 0)
	if err := d.Registered(acct, 2); err != nil {
		t.Fatal(err)
	}
	return d
}

// deviceNameVector is device_name.json.
type deviceNameVector struct {
	Description     string `json:"description"`
	IdentityPrivate string `json:"identity_private"`
	Key             string `json:"key"`
	Nonce           string `json:"nonce"`
	Name            string `json:"name"`
	Sealed          string `json:"sealed"`
}

// refNameKey is HKDF-SHA256(ikm = identity private key, no salt, info
// "pigeonhole device name v1"), 32 bytes.
func refNameKey(t *testing.T, identityPriv []byte) []byte {
	t.Helper()
	k, err := hkdf.Key(sha256.New, identityPriv, nil, "pigeonhole device name v1", 32)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func refGCM(t *testing.T, key []byte) cipher.AEAD {
	t.Helper()
	b, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestVectorDeviceName: sealed = nonce (12) || AES-256-GCM(key, nonce,
// name, no additional data) || tag (16); the e2e code opens the vector,
// and what it seals opens with the reference.
func TestVectorDeviceName(t *testing.T) {
	priv := vecCurvePrivate(0x10)
	key := refNameKey(t, priv)
	nonce := vecSeq(0x50, 12)
	name := "Alice's laptop"
	sealed := refGCM(t, key).Seal(bytes.Clone(nonce), nonce, []byte(name), nil)
	fresh := deviceNameVector{
		Description:     "encrypted_name: nonce || AES-256-GCM(key, nonce, name, no AAD) || tag; key = HKDF-SHA256(identity private key, no salt, info \"pigeonhole device name v1\", 32 bytes)",
		IdentityPrivate: hex.EncodeToString(priv),
		Key:             hex.EncodeToString(key),
		Nonce:           hex.EncodeToString(nonce),
		Name:            name,
		Sealed:          hex.EncodeToString(sealed),
	}
	var v deviceNameVector
	loadVector(t, "device_name.json", fresh, &v)
	if v != fresh {
		t.Fatalf("device_name.json differs from the reference:\n got %+v\nwant %+v", v, fresh)
	}
	d := linkedDevice(t, priv, vecSeq(0x01, 16))
	got, err := d.OpenDeviceName(unhex(t, v.Sealed))
	if err != nil || got != v.Name {
		t.Fatalf("e2e opens the vector as %q, %v; want %q", got, err, v.Name)
	}
	mine, err := d.SealDeviceName(v.Name)
	if err != nil {
		t.Fatal(err)
	}
	if len(mine) != 12+len(v.Name)+16 {
		t.Fatalf("sealed name of %d bytes, want %d", len(mine), 12+len(v.Name)+16)
	}
	plain, err := refGCM(t, key).Open(nil, mine[:12], mine[12:], nil)
	if err != nil || string(plain) != v.Name {
		t.Fatalf("the reference opens e2e's sealed name as %q, %v", plain, err)
	}
}

// provisioningVector is provisioning.json.
type provisioningVector struct {
	Description       string `json:"description"`
	IdentityPrivate   string `json:"identity_private"`
	IdentityPublic    string `json:"identity_public"`
	AccountID         string `json:"account_id"`
	LinkCode          string `json:"link_code"`
	Message           string `json:"message"`
	NewDevicePrivate  string `json:"new_device_private"`
	NewDevicePublic   string `json:"new_device_public"`
	EphemeralPrivate  string `json:"ephemeral_private"`
	EphemeralPublic   string `json:"ephemeral_public"`
	SharedSecret      string `json:"shared_secret"`
	AESKey            string `json:"aes_key"`
	MACKey            string `json:"mac_key"`
	IV                string `json:"iv"`
	Body              string `json:"body"`
	Sealed            string `json:"sealed"`
	SealedDescription string `json:"sealed_description"`
}

// refProvisionKeys derives the provisioning cipher's keys from X25519.
func refProvisionKeys(t *testing.T, priv, pub33 []byte) (shared, aesKey, macKey []byte) {
	t.Helper()
	sk, err := ecdh.X25519().NewPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := ecdh.X25519().NewPublicKey(pub33[1:])
	if err != nil {
		t.Fatal(err)
	}
	shared, err = sk.ECDH(pk)
	if err != nil {
		t.Fatal(err)
	}
	okm, err := hkdf.Key(sha256.New, shared, nil, "Mixin Provisioning Message", 64)
	if err != nil {
		t.Fatal(err)
	}
	return shared, okm[:32], okm[32:]
}

// refOpenProvisioning opens a sealed provisioning message with the new
// device's private key, checking its exact envelope encoding and MAC.
func refOpenProvisioning(t *testing.T, newPriv, sealed []byte) []byte {
	t.Helper()
	var env struct {
		PublicKey []byte `json:"public_key"`
		Body      []byte `json:"body"`
	}
	if err := json.Unmarshal(sealed, &env); err != nil {
		t.Fatal(err)
	}
	want := `{"public_key":"` + base64.StdEncoding.EncodeToString(env.PublicKey) + `","body":"` + base64.StdEncoding.EncodeToString(env.Body) + `"}`
	if string(sealed) != want {
		t.Fatalf("sealed envelope is not in the exact encoding:\n got %s\nwant %s", sealed, want)
	}
	_, aesKey, macKey := refProvisionKeys(t, newPriv, env.PublicKey)
	b := env.Body
	if len(b) < 1+16+16+32 || b[0] != 1 {
		t.Fatalf("body of %d bytes, version %d", len(b), b[0])
	}
	m := hmac.New(sha256.New, macKey)
	m.Write(b[:len(b)-32])
	if !hmac.Equal(m.Sum(nil), b[len(b)-32:]) {
		t.Fatal("body MAC does not verify")
	}
	block, _ := aes.NewCipher(aesKey)
	ct := bytes.Clone(b[17 : len(b)-32])
	cipher.NewCBCDecrypter(block, b[1:17]).CryptBlocks(ct, ct)
	pad := int(ct[len(ct)-1])
	if pad < 1 || pad > 16 || !bytes.Equal(ct[len(ct)-pad:], bytes.Repeat([]byte{byte(pad)}, pad)) {
		t.Fatal("bad PKCS#7 padding")
	}
	return ct[:len(ct)-pad]
}

// TestVectorProvisioning: the exact JSON of the provisioning message and
// its seal. The reference recomputes the vector from its inputs;
// libsignal (what e2e.ProvisioningKey.Open runs) opens it; and what
// e2e's SealProvisioning makes for the same identity, account and code
// opens, with the reference, to the same message bytes.
func TestVectorProvisioning(t *testing.T) {
	idPriv := vecCurvePrivate(0x10)
	idPub := refPublic(t, idPriv)
	acct, code := vecSeq(0x01, 16), vecSeq(0x90, 16)
	message := `{"identity_key_public":"` + base64.StdEncoding.EncodeToString(idPub) +
		`","identity_key_private":"` + base64.StdEncoding.EncodeToString(idPriv) +
		`","user_id":"` + hex.EncodeToString(acct) +
		`","provisioning_code":"` + base64.StdEncoding.EncodeToString(code) +
		`","profile_key":null}`
	newPriv, ephPriv := vecCurvePrivate(0x60), vecCurvePrivate(0x70)
	newPub, ephPub := refPublic(t, newPriv), refPublic(t, ephPriv)
	shared, aesKey, macKey := refProvisionKeys(t, ephPriv, newPub)
	iv := vecSeq(0x80, 16)
	pad := 16 - len(message)%16
	ct := append([]byte(message), bytes.Repeat([]byte{byte(pad)}, pad)...)
	block, _ := aes.NewCipher(aesKey)
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, ct)
	body := append(append([]byte{1}, iv...), ct...)
	m := hmac.New(sha256.New, macKey)
	m.Write(body)
	body = m.Sum(body)
	sealed := `{"public_key":"` + base64.StdEncoding.EncodeToString(ephPub) + `","body":"` + base64.StdEncoding.EncodeToString(body) + `"}`
	fresh := provisioningVector{
		Description:       "provisioning message (JSON, exact bytes) sealed to the new device's key with libsignal's provisioning cipher",
		IdentityPrivate:   hex.EncodeToString(idPriv),
		IdentityPublic:    hex.EncodeToString(idPub),
		AccountID:         hex.EncodeToString(acct),
		LinkCode:          hex.EncodeToString(code),
		Message:           message,
		NewDevicePrivate:  hex.EncodeToString(newPriv),
		NewDevicePublic:   hex.EncodeToString(newPub),
		EphemeralPrivate:  hex.EncodeToString(ephPriv),
		EphemeralPublic:   hex.EncodeToString(ephPub),
		SharedSecret:      hex.EncodeToString(shared),
		AESKey:            hex.EncodeToString(aesKey),
		MACKey:            hex.EncodeToString(macKey),
		IV:                hex.EncodeToString(iv),
		Body:              hex.EncodeToString(body),
		Sealed:            sealed,
		SealedDescription: "body = 0x01 || iv || AES-256-CBC-PKCS#7(aes_key, iv, message) || HMAC-SHA256(mac_key, 0x01 || iv || ciphertext); sealed = JSON {public_key, body}, standard base64 with padding",
	}
	var v provisioningVector
	loadVector(t, "provisioning.json", fresh, &v)
	if v != fresh {
		t.Fatalf("provisioning.json differs from the reference:\n got %+v\nwant %+v", v, fresh)
	}
	// libsignal, which e2e.ProvisioningKey.Open calls, opens the vector.
	plain, err := provision.Decrypt(base64.StdEncoding.EncodeToString(unhex(t, v.NewDevicePrivate)), base64.StdEncoding.EncodeToString([]byte(v.Sealed)))
	if err != nil || plain != v.Message {
		t.Fatalf("libsignal opens the vector as %q, %v", plain, err)
	}
	// e2e seals the same message bytes (with its own random E and iv).
	d := linkedDevice(t, idPriv, acct)
	mine, err := d.SealProvisioning(newPub, code)
	if err != nil {
		t.Fatal(err)
	}
	if got := refOpenProvisioning(t, newPriv, mine); string(got) != v.Message {
		t.Fatalf("e2e's provisioning message:\n got %s\nwant %s", got, v.Message)
	}
}
