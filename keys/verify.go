package keys

import (
	"crypto/ed25519"
	"fmt"

	"go.mau.fi/libsignal/ecc"
)

const (
	curveKeySize  = 33   // 0x05 || 32-byte X25519 key
	curveKeyType  = 0x05 // ecc.DjbType
	signatureSize = 64
	authKeySize   = ed25519.PublicKeySize
)

// checkCurveKey reports whether b is a well-formed Signal public key. It
// guards ecc.DecodePoint, which panics on empty input and zero-pads short
// input.
func checkCurveKey(what string, b []byte) error {
	if len(b) != curveKeySize || b[0] != curveKeyType {
		return fmt.Errorf("%w: %s must be %d bytes starting with 0x05", ErrInvalidKey, what, curveKeySize)
	}
	return nil
}

// verifySignedPreKey checks spk's XEdDSA signature against identity.
func verifySignedPreKey(identity []byte, spk SignedPreKey) error {
	if err := checkCurveKey("identity key", identity); err != nil {
		return err
	}
	if err := checkCurveKey("signed prekey", spk.PublicKey); err != nil {
		return err
	}
	if len(spk.Signature) != signatureSize {
		return fmt.Errorf("%w: signature must be %d bytes", ErrBadSignature, signatureSize)
	}
	ik, err := ecc.DecodePoint(identity, 0)
	if err != nil {
		return fmt.Errorf("%w: identity key: %v", ErrInvalidKey, err)
	}
	var sig [64]byte
	copy(sig[:], spk.Signature)
	if !ecc.VerifySignature(ik, spk.PublicKey, sig) {
		return ErrBadSignature
	}
	return nil
}

// checkDevice validates the keys of a device about to be stored.
func checkDevice(d Device) error {
	if len(d.AuthKey) != authKeySize {
		return fmt.Errorf("%w: auth key must be %d bytes", ErrInvalidKey, authKeySize)
	}
	if len(d.Name) > MaxNameBytes {
		return fmt.Errorf("%w: a device name is at most %d bytes", ErrInvalidKey, MaxNameBytes)
	}
	if err := verifySignedPreKey(d.IdentityKey, d.SignedPreKey); err != nil {
		return err
	}
	if d.KemLastResort != nil {
		return checkKemPreKey(d.IdentityKey, "last-resort KEM prekey", *d.KemLastResort)
	}
	return nil
}

// checkPreKeys validates a batch of one-time prekeys.
func checkPreKeys(pks []PreKey, maxBatch int) error {
	if len(pks) > maxBatch {
		return fmt.Errorf("%w: %d in one batch, at most %d", ErrTooManyPreKeys, len(pks), maxBatch)
	}
	for _, p := range pks {
		if err := checkCurveKey("one-time prekey", p.PublicKey); err != nil {
			return err
		}
	}
	return nil
}

// CheckDevice validates the keys of a device about to be stored: sizes,
// name length, the signed prekey's signature and, if it has one, its
// last-resort KEM prekey. Other stores of the
// directory (jskeys) check with it.
func CheckDevice(d Device) error { return checkDevice(d) }

// CheckPreKeys validates a batch of one-time prekeys of at most maxBatch.
func CheckPreKeys(pks []PreKey, maxBatch int) error { return checkPreKeys(pks, maxBatch) }

// VerifySignedPreKey checks spk's XEdDSA signature against identity.
func VerifySignedPreKey(identity []byte, spk SignedPreKey) error {
	return verifySignedPreKey(identity, spk)
}
