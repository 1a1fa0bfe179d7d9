package client

import (
	"context"
	"crypto/mlkem"
	"errors"
	"fmt"

	"github.com/pigeonhole/pigeonhole/spec"
)

// KemKeyType is the first byte of an encoded KEM public key: libsignal's
// kem::KeyType::MLKEM1024 (0x0A; its 0x08 is the pre-standard Kyber1024).
const KemKeyType = 0x0a

// KemPublicKeySize is the size of an encoded KEM public key: KemKeyType
// and the 1568-byte ML-KEM-1024 encapsulation key.
const KemPublicKeySize = 1 + mlkem.EncapsulationKeySize1024

// KemPreKey is a post-quantum prekey's public part (protocol.md, "KEM
// prekeys"): the encoded ML-KEM-1024 encapsulation key and the XEdDSA
// signature by the identity key over those KemPublicKeySize bytes.
type KemPreKey struct {
	ID        uint32
	PublicKey []byte
	Signature []byte
}

// NewKemPreKey generates an ML-KEM-1024 key pair with crypto/mlkem and
// returns the public part signed with sign (the device's identity key's
// XEdDSA signature over the message it is given, 64 bytes) and the
// private key's 64-byte seed, which the caller keeps secret and stores
// (mlkem.NewDecapsulationKey1024 turns it back into the key).
func NewKemPreKey(id uint32, sign func(message []byte) ([]byte, error)) (KemPreKey, []byte, error) {
	dk, err := mlkem.GenerateKey1024()
	if err != nil {
		return KemPreKey{}, nil, fmt.Errorf("KEM prekey: %w", err)
	}
	pub := append([]byte{KemKeyType}, dk.EncapsulationKey().Bytes()...)
	sig, err := sign(pub)
	if err != nil {
		return KemPreKey{}, nil, fmt.Errorf("KEM prekey: sign: %w", err)
	}
	if len(sig) != 64 {
		return KemPreKey{}, nil, fmt.Errorf("KEM prekey: the signature is %d bytes, want 64", len(sig))
	}
	return KemPreKey{ID: id, PublicKey: pub, Signature: sig}, dk.Bytes(), nil
}

// ParseKemPublicKey checks an encoded KEM public key (from a bundle) and
// returns the encapsulation key. It does not check the signature: verify
// it against the identity key first.
func ParseKemPublicKey(b []byte) (*mlkem.EncapsulationKey1024, error) {
	if len(b) != KemPublicKeySize || b[0] != KemKeyType {
		return nil, fmt.Errorf("KEM public key: want %d bytes starting with 0x%02x", KemPublicKeySize, KemKeyType)
	}
	ek, err := mlkem.NewEncapsulationKey1024(b[1:])
	if err != nil {
		return nil, errors.New("KEM public key: not a valid ML-KEM-1024 encapsulation key")
	}
	return ek, nil
}

func toSpecKem(k *KemPreKey) *spec.KemPreKey {
	if k == nil {
		return nil
	}
	return &spec.KemPreKey{Id: k.ID, PublicKey: k.PublicKey, Signature: k.Signature}
}

// UploadKemPreKeys adds one-time KEM prekeys (at most 100) and returns
// how many the relay now holds for this device. One bad key refuses them
// all.
func (c *Conn) UploadKemPreKeys(ctx context.Context, kpks []KemPreKey) (int, error) {
	req := &spec.UploadKemPreKeysRequest{KemPrekeys: make([]*spec.KemPreKey, len(kpks))}
	for i := range kpks {
		req.KemPrekeys[i] = toSpecKem(&kpks[i])
	}
	resp, err := c.roundTrip(ctx, &spec.Request{Body: &spec.Request_UploadKemPrekeys{UploadKemPrekeys: req}})
	if err != nil {
		return 0, fmt.Errorf("upload KEM prekeys: %w", err)
	}
	return int(resp.GetUploadKemPrekeys().GetStored()), nil
}

// RotateLastResortKemPreKey sets or replaces this device's last-resort
// KEM prekey.
func (c *Conn) RotateLastResortKemPreKey(ctx context.Context, k KemPreKey) error {
	_, err := c.roundTrip(ctx, &spec.Request{Body: &spec.Request_RotateLastResortKemPrekey{
		RotateLastResortKemPrekey: &spec.RotateLastResortKemPreKeyRequest{KemPrekey: toSpecKem(&k)},
	}})
	if err != nil {
		return fmt.Errorf("rotate last-resort KEM prekey: %w", err)
	}
	return nil
}

// PreKeyCounts is what the relay holds of this device's prekeys.
type PreKeyCounts struct {
	PreKeys       int  // one-time X25519 prekeys
	KemPreKeys    int  // one-time KEM prekeys
	KemLastResort bool // whether it has a last-resort KEM prekey
}

// PreKeyCounts returns how many one-time prekeys of each kind the relay
// holds for this device, and whether it has a last-resort KEM prekey.
func (c *Conn) PreKeyCounts(ctx context.Context) (*PreKeyCounts, error) {
	resp, err := c.roundTrip(ctx, &spec.Request{Body: &spec.Request_PrekeyStatus{PrekeyStatus: &spec.PreKeyStatusRequest{}}})
	if err != nil {
		return nil, fmt.Errorf("prekey status: %w", err)
	}
	st := resp.GetPrekeyStatus()
	return &PreKeyCounts{PreKeys: int(st.GetStored()), KemPreKeys: int(st.GetKemStored()), KemLastResort: st.GetKemLastResort()}, nil
}
