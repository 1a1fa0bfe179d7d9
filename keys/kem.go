package keys

import (
	"crypto/mlkem"
	"fmt"

	"go.mau.fi/libsignal/ecc"
)

// KemKeyType is the first byte of an encoded KEM public key: libsignal's
// kem::KeyType::MLKEM1024 (rust/protocol/src/kem.rs). libsignal's 0x08 is
// Kyber1024, the pre-standard round-3 Kyber, whose keys are encoded alike
// but whose encapsulation differs from FIPS 203's; the keys here are
// ML-KEM-1024 (crypto/mlkem), so they carry 0x0A.
const KemKeyType = 0x0a

// KemPublicKeySize is the size of an encoded KEM public key: the type
// byte and the 1568-byte ML-KEM-1024 encapsulation key.
const KemPublicKeySize = 1 + mlkem.EncapsulationKeySize1024

// ErrBadKemSignature means a KEM prekey's XEdDSA signature does not verify
// against the device's identity key. It is an ErrBadSignature.
var ErrBadKemSignature = fmt.Errorf("%w (a KEM prekey's)", ErrBadSignature)

// checkKemPreKey checks a KEM prekey's encoding and its signature by
// identity, which must already be a well-formed identity key. what names
// the key in errors.
func checkKemPreKey(identity []byte, what string, k KemPreKey) error {
	if len(k.PublicKey) != KemPublicKeySize || k.PublicKey[0] != KemKeyType {
		return fmt.Errorf("%w: %s %d must be %d bytes: the type byte 0x%02x (ML-KEM-1024), then the %d-byte encapsulation key",
			ErrInvalidKey, what, k.ID, KemPublicKeySize, KemKeyType, mlkem.EncapsulationKeySize1024)
	}
	// FIPS 203's check of the encapsulation key (every coefficient
	// below q): a key that fails it could not be used by any sender.
	if _, err := mlkem.NewEncapsulationKey1024(k.PublicKey[1:]); err != nil {
		return fmt.Errorf("%w: %s %d is not a valid ML-KEM-1024 encapsulation key", ErrInvalidKey, what, k.ID)
	}
	if len(k.Signature) != signatureSize {
		return fmt.Errorf("%w: %s %d: the signature must be %d bytes", ErrBadKemSignature, what, k.ID, signatureSize)
	}
	if err := checkCurveKey("identity key", identity); err != nil {
		return err
	}
	ik, err := ecc.DecodePoint(identity, 0)
	if err != nil {
		return fmt.Errorf("%w: identity key: %v", ErrInvalidKey, err)
	}
	if !ecc.VerifySignature(ik, k.PublicKey, [64]byte(k.Signature)) {
		return fmt.Errorf("%w: %s %d", ErrBadKemSignature, what, k.ID)
	}
	return nil
}

// checkKemPreKeys validates a batch of one-time KEM prekeys of at most
// maxBatch, signed by identity.
func checkKemPreKeys(identity []byte, kpks []KemPreKey, maxBatch int) error {
	if len(kpks) > maxBatch {
		return fmt.Errorf("%w: %d KEM prekeys in one batch, at most %d", ErrTooManyPreKeys, len(kpks), maxBatch)
	}
	for _, k := range kpks {
		if err := checkKemPreKey(identity, "one-time KEM prekey", k); err != nil {
			return err
		}
	}
	return nil
}

// CheckKemPreKeys validates a batch of one-time KEM prekeys of at most
// maxBatch: encoding, key and signature by identity. Other stores of the
// directory (jskeys) check with it.
func CheckKemPreKeys(identity []byte, kpks []KemPreKey, maxBatch int) error {
	if err := checkCurveKey("identity key", identity); err != nil {
		return err
	}
	return checkKemPreKeys(identity, kpks, maxBatch)
}

// VerifyKemLastResort checks a last-resort KEM prekey: encoding, key and
// signature by identity.
func VerifyKemLastResort(identity []byte, k KemPreKey) error {
	if err := checkCurveKey("identity key", identity); err != nil {
		return err
	}
	return checkKemPreKey(identity, "last-resort KEM prekey", k)
}
