package e2e

import (
	"crypto/mlkem"
	"encoding/json"
	"errors"
	"fmt"

	"go.mau.fi/libsignal/ecc"

	"github.com/pigeonhole/pigeonhole/relay/client"
)

// KEMKeyType is the byte that starts an encoded KEM prekey public key
// (EncodeKEM in the PQXDH specification): 0x0A followed by the 1568-byte
// ML-KEM-1024 encapsulation key, the value Signal's libsignal gives
// ML-KEM-1024 (rust/protocol/src/kem.rs, KeyType::value; 0x08 there is
// round-3 Kyber1024, which Pigeonhole does not use), and the one the
// relay's key directory checks (protocol.md, "KEM prekeys").
const KEMKeyType = 0x0A

// KEMPublicKeySize is the size of an encoded KEM prekey public key: the
// type byte and the ML-KEM-1024 encapsulation key (FIPS 203, table 3).
const KEMPublicKeySize = 1 + mlkem.EncapsulationKeySize1024

// KEMCiphertextSize is the size of an encoded KEM ciphertext: the type
// byte and the ML-KEM-1024 ciphertext (FIPS 203, table 3). The type byte
// in front mirrors libsignal's kem::SerializedCiphertext.
const KEMCiphertextSize = 1 + mlkem.CiphertextSize1024

// KEMPreKey is the public part of a device's signed ML-KEM-1024 prekey,
// as a key bundle carries it (the PQXDH specification's PQOPK or PQSPK).
type KEMPreKey struct {
	// ID names the prekey in the initial message, so the responder finds
	// its private key.
	ID uint32
	// PublicKey is KEMKeyType followed by the ML-KEM-1024 encapsulation
	// key (KEMPublicKeySize bytes).
	PublicKey []byte
	// Signature is the XEdDSA signature by the device's identity key over
	// PublicKey, all KEMPublicKeySize bytes (64 bytes).
	Signature []byte
	// LastResort marks the one prekey the relay hands out again when the
	// one-time ones are gone. The responder keeps it after use.
	LastResort bool
}

// Errors of the KEM prekeys.
var (
	// ErrBadKEMPreKey means a bundle's KEM prekey is malformed or its
	// signature does not verify with the identity key.
	ErrBadKEMPreKey = errors.New("e2e: bad KEM prekey")
	// ErrKEMPreKeyUsed means a PQXDH initial message names a KEM prekey
	// this device does not hold: a one-time prekey already used (a replay)
	// or one it never made.
	ErrKEMPreKeyUsed = errors.New("e2e: KEM prekey already used or unknown")
	// ErrKEMReplay means a PQXDH initial message repeats a key agreement
	// already made with the last-resort KEM prekey (same signed prekey and
	// base key) for a session this device no longer has.
	ErrKEMReplay = errors.New("e2e: replayed key agreement on the last-resort KEM prekey")
)

// kemRecord is a KEM prekey's private part, in kemprekeys/<id> (0600).
type kemRecord struct {
	Seed       []byte `json:"seed"` // the 64-byte ML-KEM decapsulation key seed (d || z)
	LastResort bool   `json:"last_resort,omitempty"`
	// Used holds, for a last-resort prekey, one entry per key agreement
	// made with it: SHA-256 of the signed prekey id and the base key.
	Used [][]byte `json:"used,omitempty"`
}

func (s *txStore) loadKEM(id uint32) (*kemRecord, error) {
	b, err := s.tx.Get(kemPreKeysDir + idFile(id))
	if err != nil || b == nil {
		return nil, err
	}
	var r kemRecord
	if err := json.Unmarshal(b, &r); err != nil || len(r.Seed) != mlkem.SeedSize {
		return nil, fmt.Errorf("%w: KEM prekey %d cannot be read", ErrDamaged, id)
	}
	return &r, nil
}

func (s *txStore) storeKEM(id uint32, r *kemRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return s.tx.Put(kemPreKeysDir+idFile(id), b)
}

func (s *txStore) removeKEM(id uint32) error {
	return s.tx.Delete(kemPreKeysDir + idFile(id))
}

// NewKEMPreKeys makes and stores n one-time ML-KEM-1024 prekeys, signed
// by the identity key, and returns their public parts to upload.
func (d *Device) NewKEMPreKeys(n int) ([]KEMPreKey, error) {
	return d.newKEMPreKeys(n, false)
}

// NewLastResortKEMPreKey makes and stores a last-resort ML-KEM-1024
// prekey, signed by the identity key, and returns its public part to
// upload. The previous last-resort prekey stays, so sessions started
// from it before the relay has the new one still work; RemoveKEMPreKey
// drops it.
func (d *Device) NewLastResortKEMPreKey() (KEMPreKey, error) {
	pks, err := d.newKEMPreKeys(1, true)
	if err != nil {
		return KEMPreKey{}, err
	}
	return pks[0], nil
}

// RemoveKEMPreKey deletes a KEM prekey's private part (a replaced
// last-resort prekey, once the relay serves its successor).
func (d *Device) RemoveKEMPreKey(id uint32) error {
	return d.update(func(s *txStore) error { return s.removeKEM(id) })
}

func (d *Device) newKEMPreKeys(n int, lastResort bool) ([]KEMPreKey, error) {
	var out []KEMPreKey
	err := d.updateState(func(s *txStore, st *state) (err error) {
		out, err = d.genKEMPreKeys(s, st, n, lastResort)
		return err
	})
	return out, err
}

// genKEMPreKeys makes, stores and signs n KEM prekeys from
// st.NextKEMPreKeyID on, in s's transaction, and moves st's counter on;
// the caller saves st.
func (d *Device) genKEMPreKeys(s *txStore, st *state, n int, lastResort bool) ([]KEMPreKey, error) {
	next := st.NextKEMPreKeyID
	if next == 0 {
		next = 1
	}
	out := make([]KEMPreKey, 0, n)
	for range n {
		dk, err := mlkem.GenerateKey1024()
		if err != nil {
			return nil, fmt.Errorf("e2e: KEM prekey: %w", err)
		}
		if err := s.storeKEM(next, &kemRecord{Seed: dk.Bytes(), LastResort: lastResort}); err != nil {
			return nil, fmt.Errorf("e2e: %w", err)
		}
		pub := encodeKEMPublic(dk.EncapsulationKey())
		sig := ecc.CalculateSignature(d.ident.PrivateKey(), pub)
		out = append(out, KEMPreKey{ID: next, PublicKey: pub, Signature: sig[:], LastResort: lastResort})
		// Ids are 24-bit like Signal's prekey ids; wrap around, skipping 0.
		if next++; next > 0xFFFFFF {
			next = 1
		}
	}
	st.NextKEMPreKeyID = next
	return out, nil
}

// Upload returns k as the relay takes it (client.Conn.UploadKemPreKeys,
// client.Registration.KemLastResort).
func (k KEMPreKey) Upload() client.KemPreKey {
	return client.KemPreKey{ID: k.ID, PublicKey: k.PublicKey, Signature: k.Signature}
}

// UploadAll is Upload of each of ks.
func UploadAll(ks []KEMPreKey) []client.KemPreKey {
	out := make([]client.KemPreKey, len(ks))
	for i, k := range ks {
		out[i] = k.Upload()
	}
	return out
}

// bundleKEM returns the KEM prekeys a fetch claimed, by device id, as
// StartSessionsKEM takes them.
func bundleKEM(keys *client.Keys) map[uint32]KEMPreKey {
	var m map[uint32]KEMPreKey
	for _, b := range keys.Devices {
		if b.KemPreKey == nil {
			continue
		}
		if m == nil {
			m = make(map[uint32]KEMPreKey)
		}
		m[b.DeviceID] = KEMPreKey{ID: b.KemPreKey.ID, PublicKey: b.KemPreKey.PublicKey,
			Signature: b.KemPreKey.Signature, LastResort: b.KemLastResort}
	}
	return m
}

// encodeKEMPublic is EncodeKEM: the type byte, then the encapsulation key.
func encodeKEMPublic(ek *mlkem.EncapsulationKey1024) []byte {
	return append([]byte{KEMKeyType}, ek.Bytes()...)
}

// verifyKEMPreKey checks a bundle's KEM prekey: its encoding and its
// XEdDSA signature by the identity key ik over the encoded public key
// (PQXDH specification, section 3.3: Alice verifies the prekey
// signatures and aborts if they fail). It returns the encapsulation key.
func verifyKEMPreKey(ik ecc.ECPublicKeyable, k KEMPreKey) (*mlkem.EncapsulationKey1024, error) {
	if len(k.PublicKey) != KEMPublicKeySize || k.PublicKey[0] != KEMKeyType {
		return nil, fmt.Errorf("%w %d: not an encoded ML-KEM-1024 key", ErrBadKEMPreKey, k.ID)
	}
	if len(k.Signature) != 64 {
		return nil, fmt.Errorf("%w %d: signature is not 64 bytes", ErrBadKEMPreKey, k.ID)
	}
	if !ecc.VerifySignature(ik, k.PublicKey, [64]byte(k.Signature)) {
		return nil, fmt.Errorf("%w %d: signature does not verify", ErrBadKEMPreKey, k.ID)
	}
	ek, err := mlkem.NewEncapsulationKey1024(k.PublicKey[1:])
	if err != nil {
		return nil, fmt.Errorf("%w %d: %v", ErrBadKEMPreKey, k.ID, err)
	}
	return ek, nil
}
