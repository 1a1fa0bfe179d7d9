package e2e

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"go.mau.fi/libsignal/cipher"
	"go.mau.fi/libsignal/ecc"
	"go.mau.fi/libsignal/kdf"
	"go.mau.fi/libsignal/provision"
)

// ErrBadProvisioning means a sealed provisioning message is malformed,
// was not sealed to this key, or carries invalid keys or ids.
var ErrBadProvisioning = errors.New("e2e: bad provisioning message")

// The provisioning wire format is libsignal's (package provision): the
// JSON envelope {"public_key": sender's ephemeral key (33 bytes),
// "body": version || iv || AES-256-CBC ciphertext || HMAC-SHA256}, with
// keys from HKDF-SHA256 of the X25519 shared secret.
const (
	provisionInfo       = "Mixin Provisioning Message"
	provisionVersion    = 1
	provisionIVSize     = 16
	provisionMACSize    = 32
	provisionHeaderSize = 1 + provisionIVSize                         // version || iv
	provisionMinBody    = provisionHeaderSize + 16 + provisionMACSize // one AES block
	provisionMaxSealed  = 64 << 10
	linkCodeSize        = 16
)

// ProvisioningKey is a new device's ephemeral key pair for receiving its
// provisioning message.
type ProvisioningKey struct {
	pair *ecc.ECKeyPair
}

// NewProvisioningKey generates a fresh provisioning key pair. Use it for
// one link attempt only.
func NewProvisioningKey() (*ProvisioningKey, error) {
	pair, err := ecc.GenerateKeyPair()
	if err != nil {
		return nil, fmt.Errorf("e2e: provisioning key: %w", err)
	}
	return &ProvisioningKey{pair: pair}, nil
}

// Public returns the public key to show the primary device: 33 bytes,
// 0x05 first. It is nil for a ProvisioningKey not made by
// NewProvisioningKey.
func (k *ProvisioningKey) Public() []byte {
	if k == nil || k.pair == nil {
		return nil
	}
	return k.pair.PublicKey().Serialize()
}

// Provisioning is what a primary device gives a new device.
type Provisioning struct {
	IdentityPublic  []byte // 33 bytes, 0x05 first
	IdentityPrivate []byte // 32 bytes
	AccountID       []byte // 16 bytes
	LinkCode        []byte // 16 bytes, the relay's single-use linking code
}

// SealProvisioning encrypts this (registered) device's identity key pair,
// account id and linkCode to the new device's public key. The result is
// opaque bytes for the relay to forward to the new device.
func (d *Device) SealProvisioning(newDevicePublic []byte, linkCode []byte) ([]byte, error) {
	acct := d.AccountID()
	if len(acct) != 16 {
		return nil, ErrNotRegistered
	}
	if len(linkCode) != linkCodeSize {
		return nil, fmt.Errorf("e2e: the link code must be %d bytes", linkCodeSize)
	}
	theirs, err := publicKey(newDevicePublic)
	if err != nil {
		return nil, fmt.Errorf("e2e: new device key: %w", err)
	}
	st := d.state()
	plain, err := json.Marshal(provision.ProvisionMessage{
		IdentityKeyPublic:  st.IdentityPublic,
		IdentityKeyPrivate: st.IdentityPrivate,
		UserId:             hex.EncodeToString(acct),
		ProvisioningCode:   base64.StdEncoding.EncodeToString(linkCode),
	})
	if err != nil {
		return nil, fmt.Errorf("e2e: provisioning message: %w", err)
	}
	eph, err := ecc.GenerateKeyPair()
	if err != nil {
		return nil, fmt.Errorf("e2e: ephemeral key: %w", err)
	}
	aesKey, macKey, err := provisionKeys(theirs, eph.PrivateKey().Serialize())
	if err != nil {
		return nil, fmt.Errorf("e2e: new device key: %w", err)
	}
	body := make([]byte, provisionHeaderSize, provisionMinBody+len(plain))
	body[0] = provisionVersion
	if _, err := rand.Read(body[1:provisionHeaderSize]); err != nil {
		return nil, fmt.Errorf("e2e: iv: %w", err)
	}
	ct, err := cipher.EncryptCbc(body[1:provisionHeaderSize], aesKey, plain)
	if err != nil {
		return nil, fmt.Errorf("e2e: encrypt provisioning message: %w", err)
	}
	body = append(body, ct...)
	mac := hmac.New(sha256.New, macKey)
	mac.Write(body)
	body = mac.Sum(body)
	return json.Marshal(provision.ProvisionEnvelope{PublicKey: eph.PublicKey().Serialize(), Body: body})
}

// Open decrypts and validates a sealed provisioning message; errors wrap
// ErrBadProvisioning. It checks the whole message before handing it to
// libsignal, whose provision.Decrypt panics on malformed input.
func (k *ProvisioningKey) Open(sealed []byte) (*Provisioning, error) {
	if k == nil || k.pair == nil {
		return nil, fmt.Errorf("%w: no provisioning key (use NewProvisioningKey)", ErrBadProvisioning)
	}
	if len(sealed) > provisionMaxSealed {
		return nil, fmt.Errorf("%w: %d bytes is too long", ErrBadProvisioning, len(sealed))
	}
	var env provision.ProvisionEnvelope
	if err := json.Unmarshal(sealed, &env); err != nil {
		return nil, fmt.Errorf("%w: envelope: %w", ErrBadProvisioning, err)
	}
	// Only SealProvisioning's exact encoding is accepted, so the envelope
	// is not malleable (JSON matches names case-insensitively, base64 may
	// carry stray bits), and provision.Decrypt, which parses it again,
	// sees exactly what is checked here.
	if canon, err := json.Marshal(env); err != nil || !bytes.Equal(canon, sealed) {
		return nil, fmt.Errorf("%w: envelope is not in canonical form", ErrBadProvisioning)
	}
	theirs, err := publicKey(env.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("%w: sender key: %w", ErrBadProvisioning, err)
	}
	n := len(env.Body)
	if n < provisionMinBody || (n-provisionHeaderSize-provisionMACSize)%16 != 0 {
		return nil, fmt.Errorf("%w: body of %d bytes", ErrBadProvisioning, n)
	}
	if env.Body[0] != provisionVersion {
		return nil, fmt.Errorf("%w: version %d", ErrBadProvisioning, env.Body[0])
	}
	priv := k.pair.PrivateKey().Serialize()
	// Rejects low-order sender keys (an all-zero shared secret) before
	// libsignal, which does not check, computes the same secret.
	if _, _, err := provisionKeys(theirs, priv); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadProvisioning, err)
	}
	plain, err := provision.Decrypt(base64.StdEncoding.EncodeToString(priv[:]), base64.StdEncoding.EncodeToString(sealed))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadProvisioning, err)
	}
	var msg provision.ProvisionMessage
	if err := json.Unmarshal([]byte(plain), &msg); err != nil {
		return nil, fmt.Errorf("%w: message: %w", ErrBadProvisioning, err)
	}
	return parseProvisioning(&msg)
}

// parseProvisioning validates a decrypted provisioning message. The
// profile key is not used and is ignored.
func parseProvisioning(m *provision.ProvisionMessage) (*Provisioning, error) {
	acct, err := hex.DecodeString(m.UserId)
	if err != nil || len(m.UserId) != 32 {
		return nil, fmt.Errorf("%w: user id is not 32 hex digits", ErrBadProvisioning)
	}
	code, err := base64.StdEncoding.Strict().DecodeString(m.ProvisioningCode)
	if err != nil || len(code) != linkCodeSize {
		return nil, fmt.Errorf("%w: provisioning code is not %d bytes in base64", ErrBadProvisioning, linkCodeSize)
	}
	p := &Provisioning{
		IdentityPublic:  m.IdentityKeyPublic,
		IdentityPrivate: m.IdentityKeyPrivate,
		AccountID:       acct,
		LinkCode:        code,
	}
	if err := checkIdentity(p.IdentityPublic, p.IdentityPrivate); err != nil {
		return nil, err
	}
	return p, nil
}

// checkIdentity checks that pub and priv are a Signal identity key pair:
// a 33-byte public key, and a clamped 32-byte Curve25519 private key
// whose public key it is. Errors wrap ErrBadProvisioning.
func checkIdentity(pub, priv []byte) error {
	if _, err := publicKey(pub); err != nil {
		return fmt.Errorf("%w: identity key: %w", ErrBadProvisioning, err)
	}
	if len(priv) != 32 || priv[0]&7 != 0 || priv[31]&0xC0 != 0x40 {
		return fmt.Errorf("%w: identity private key is not a 32-byte Curve25519 key", ErrBadProvisioning)
	}
	sk, err := ecdh.X25519().NewPrivateKey(priv)
	if err != nil {
		return fmt.Errorf("%w: identity private key: %w", ErrBadProvisioning, err)
	}
	if subtle.ConstantTimeCompare(sk.PublicKey().Bytes(), pub[1:]) != 1 {
		return fmt.Errorf("%w: identity private key does not match the public key", ErrBadProvisioning)
	}
	return nil
}

// publicKey decodes a 33-byte Signal public key (0x05 first). The
// Curve25519 coordinate must be canonical (below 2^255-19): X25519
// ignores the top bit, which would let a flipped bit go unnoticed.
func publicKey(b []byte) ([32]byte, error) {
	var k [32]byte
	if len(b) != 33 || b[0] != ecc.DjbType {
		return k, errors.New("not a 33-byte Signal public key")
	}
	if !canonicalX25519(b[1:]) {
		return k, errors.New("public key is not a canonical Curve25519 point")
	}
	p, err := ecc.DecodePoint(b, 0)
	if err != nil {
		return k, err
	}
	return p.PublicKey(), nil
}

// provisionKeys derives the AES and HMAC keys of a provisioning message
// from an X25519 exchange, refusing low-order public keys.
func provisionKeys(theirs, ours [32]byte) (aesKey, macKey []byte, err error) {
	shared := kdf.CalculateSharedSecret(theirs, ours)
	var zero [32]byte
	if subtle.ConstantTimeCompare(shared[:], zero[:]) == 1 {
		return nil, nil, errors.New("low-order public key")
	}
	secrets, err := kdf.DeriveSecrets(shared[:], nil, []byte(provisionInfo), 64)
	if err != nil {
		return nil, nil, fmt.Errorf("derive provisioning keys: %w", err)
	}
	return secrets[:32], secrets[32:], nil
}

// canonicalX25519 reports whether the little-endian 32-byte u is below
// p = 2^255-19.
func canonicalX25519(u []byte) bool {
	if u[31] < 0x7f {
		return true
	}
	if u[31] > 0x7f {
		return false
	}
	for i := 30; i >= 1; i-- {
		if u[i] != 0xff {
			return true
		}
	}
	return u[0] < 0xed
}
