package e2e

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"

	"go.mau.fi/libsignal/ecc"
	"go.mau.fi/libsignal/keys/identity"

	"github.com/pigeonhole/pigeonhole/relay/client"
)

// ErrBadDeviceName means a device name is too long to seal, or a sealed
// name could not be opened (it is not from a device of this account, or
// it was altered).
var ErrBadDeviceName = errors.New("e2e: bad device name")

const (
	// MaxDeviceName is the longest device name SealDeviceName accepts,
	// in bytes.
	MaxDeviceName  = 64
	deviceNameInfo = "pigeonhole device name v1"
	nameNonceSize  = 12
	nameTagSize    = 16
)

// CreateLinked makes a new device in dir (made 0700 if missing) that shares the account's
// identity key pair from p: a fresh Ed25519 auth key, registration id,
// signed prekey (signed by the shared identity) and n one-time prekeys.
// It returns the registration to send with the link request; after the
// relay answers, call Registered(p.AccountID, deviceID). ErrExists if
// dir holds a device; an invalid p is an error wrapping
// ErrBadProvisioning.
func CreateLinked(dir string, p *Provisioning, n int) (*Device, *client.Registration, error) {
	if err := checkProvisioning(p); err != nil {
		return nil, nil, err
	}
	s, err := makeDir(dir)
	if err != nil {
		return nil, nil, err
	}
	return CreateLinkedIn(s, p, n)
}

// CreateLinkedIn is CreateLinked in the storage s, which must not hold
// a device (ErrExists).
func CreateLinkedIn(s Storage, p *Provisioning, n int) (*Device, *client.Registration, error) {
	if err := checkProvisioning(p); err != nil {
		return nil, nil, err
	}
	var pub, priv [32]byte
	copy(pub[:], p.IdentityPublic[1:])
	copy(priv[:], p.IdentityPrivate)
	ik := identity.NewKeyPair(identity.NewKey(ecc.NewDjbECPublicKey(pub)), ecc.NewDjbECPrivateKey(priv))
	return create(s, ik, n)
}

// checkProvisioning refuses a provisioning message a device cannot be
// made from, with an error wrapping ErrBadProvisioning.
func checkProvisioning(p *Provisioning) error {
	if p == nil {
		return fmt.Errorf("%w: none given", ErrBadProvisioning)
	}
	if len(p.AccountID) != 16 {
		return fmt.Errorf("%w: account id is not 16 bytes", ErrBadProvisioning)
	}
	return checkIdentity(p.IdentityPublic, p.IdentityPrivate)
}

// nameAEAD is the AES-256-GCM cipher for device names, keyed from the
// identity private key that all of an account's devices share.
func (d *Device) nameAEAD() (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, d.state().IdentityPrivate, nil, deviceNameInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("e2e: device name key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("e2e: device name key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("e2e: device name key: %w", err)
	}
	return aead, nil
}

// SealDeviceName encrypts a device's display name so only the account's
// devices (which share the identity key) can read it: AES-256-GCM under
// HKDF-SHA256(identity private key, salt nil, info "pigeonhole device
// name v1"), random 12-byte nonce, output nonce||ciphertext. Names over
// MaxDeviceName bytes are refused with ErrBadDeviceName.
func (d *Device) SealDeviceName(name string) ([]byte, error) {
	if len(name) > MaxDeviceName {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrBadDeviceName, len(name), MaxDeviceName)
	}
	aead, err := d.nameAEAD()
	if err != nil {
		return nil, err
	}
	out := make([]byte, nameNonceSize, nameNonceSize+len(name)+nameTagSize)
	if _, err := rand.Read(out); err != nil {
		return nil, fmt.Errorf("e2e: nonce: %w", err)
	}
	return aead.Seal(out, out, []byte(name), nil), nil
}

// OpenDeviceName decrypts a name sealed by SealDeviceName on a device of
// this account. Anything else fails with ErrBadDeviceName.
func (d *Device) OpenDeviceName(sealed []byte) (string, error) {
	if len(sealed) < nameNonceSize+nameTagSize || len(sealed) > nameNonceSize+MaxDeviceName+nameTagSize {
		return "", fmt.Errorf("%w: sealed name of %d bytes", ErrBadDeviceName, len(sealed))
	}
	aead, err := d.nameAEAD()
	if err != nil {
		return "", err
	}
	name, err := aead.Open(nil, sealed[:nameNonceSize], sealed[nameNonceSize:], nil)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadDeviceName, err)
	}
	return string(name), nil
}
