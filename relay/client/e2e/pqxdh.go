package e2e

// PQXDH: Signal's post-quantum extended Diffie-Hellman key agreement
// (https://signal.org/docs/specifications/pqxdh/), built around
// go.mau.fi/libsignal's session state, which has X3DH only. This file is
// Pigeonhole's own cryptographic code; README.md ("Post-quantum session
// start") says which parts are ours and which are libsignal's or the Go
// standard library's.

import (
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/mlkem"
	"crypto/sha256"
	"errors"
	"fmt"

	"go.mau.fi/libsignal/ecc"
	"go.mau.fi/libsignal/kdf"
	"go.mau.fi/libsignal/keys/chain"
	"go.mau.fi/libsignal/keys/root"
	"go.mau.fi/libsignal/keys/session"
)

// pqxdhInfo is the HKDF info of the PQXDH key derivation: the label
// Signal's libsignal uses (rust/protocol/src/pqxdh.rs,
// HandshakeKeys::derive), in the form the specification's section 2.1
// asks for (application, curve, hash, KEM). Signal uses the same label
// for its Kyber1024 and ML-KEM-1024 prekeys.
const pqxdhInfo = "WhisperText_X25519_SHA-256_CRYSTALS-KYBER-1024"

// discontinuity is F in the specification's section 2.2: 32 0xFF bytes
// in front of the key material when the curve is curve25519, for domain
// separation from XEdDSA. libsignal prepends the same bytes in X3DH
// (ratchet.genDiscontinuity) and in PQXDH.
var discontinuity = [32]byte{
	0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
	0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
	0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
	0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
}

// errLowOrder means a Diffie-Hellman output was all zeros: the peer's
// public key is a low-order point.
var errLowOrder = errors.New("e2e: PQXDH: a public key is a low-order point")

// dh is X25519(priv, pub) with the standard library, which refuses an
// all-zero output.
func dh(priv ecc.ECPrivateKeyable, pub ecc.ECPublicKeyable) ([]byte, error) {
	p := priv.Serialize()
	sk, err := ecdh.X25519().NewPrivateKey(p[:])
	if err != nil {
		return nil, err
	}
	q := pub.PublicKey()
	pk, err := ecdh.X25519().NewPublicKey(q[:])
	if err != nil {
		return nil, err
	}
	out, err := sk.ECDH(pk)
	if err != nil {
		return nil, errLowOrder
	}
	return out, nil
}

// pqxdhKeys is the specification's KDF (section 2.2) applied to
// DH1 || DH2 || DH3 [|| DH4] || SS (section 3.3): HKDF-SHA-256 with
// input key material F || KM, a zero salt of hash length (what HKDF uses
// for an absent salt, RFC 5869 section 2.2) and info pqxdhInfo. Where
// the specification takes 32 bytes as SK, Signal's ratchet takes the
// first 64 bytes of the same output as the Double Ratchet's root key and
// first chain key (libsignal: HandshakeKeys::derive; the 32 bytes after
// them seed Signal's SPQR ratchet, which Pigeonhole does not run). The
// keys come back as libsignal's types, which run the ratchet from there.
func pqxdhKeys(dhs [][]byte, ss []byte) (*session.KeyPair, error) {
	km := make([]byte, 0, len(discontinuity)+32*len(dhs)+len(ss))
	km = append(km, discontinuity[:]...)
	for _, s := range dhs {
		km = append(km, s...)
	}
	km = append(km, ss...)
	okm, err := hkdf.Key(sha256.New, km, nil, pqxdhInfo, root.DerivedSecretsSize)
	clear(km)
	if err != nil {
		return nil, fmt.Errorf("e2e: PQXDH: %w", err)
	}
	return session.NewKeyPair(root.NewKey(kdf.DeriveSecrets, okm[:32]), chain.NewKey(kdf.DeriveSecrets, okm[32:], 0)), nil
}

// initiatorParams are Alice's inputs (specification section 3.3).
type initiatorParams struct {
	identity  ecc.ECPrivateKeyable // IK_A
	base      ecc.ECPrivateKeyable // EK_A
	theirID   ecc.ECPublicKeyable  // IK_B
	signed    ecc.ECPublicKeyable  // SPK_B
	oneTime   ecc.ECPublicKeyable  // OPK_B, or nil
	kemSecret []byte               // SS, from encapsulating to PQPK_B
}

// initiatorKeys computes DH1 = DH(IK_A, SPK_B), DH2 = DH(EK_A, IK_B),
// DH3 = DH(EK_A, SPK_B), DH4 = DH(EK_A, OPK_B) if there is a one-time
// prekey, and derives the session keys with SS.
func initiatorKeys(p initiatorParams) (*session.KeyPair, error) {
	pairs := []dhPair{{p.identity, p.signed}, {p.base, p.theirID}, {p.base, p.signed}}
	if p.oneTime != nil {
		pairs = append(pairs, dhPair{p.base, p.oneTime})
	}
	return agree(pairs, p.kemSecret)
}

// responderParams are Bob's inputs (specification section 3.4).
type responderParams struct {
	identity  ecc.ECPrivateKeyable // IK_B
	signed    ecc.ECPrivateKeyable // SPK_B
	oneTime   ecc.ECPrivateKeyable // OPK_B, or nil
	theirID   ecc.ECPublicKeyable  // IK_A
	base      ecc.ECPublicKeyable  // EK_A
	kemSecret []byte               // SS, from decapsulating CT with PQPK_B
}

// responderKeys computes the same DH1..DH4 from Bob's side and derives
// the session keys with SS.
func responderKeys(p responderParams) (*session.KeyPair, error) {
	pairs := []dhPair{{p.signed, p.theirID}, {p.identity, p.base}, {p.signed, p.base}}
	if p.oneTime != nil {
		pairs = append(pairs, dhPair{p.oneTime, p.base})
	}
	return agree(pairs, p.kemSecret)
}

// dhPair is one Diffie-Hellman of the agreement, in the order the
// specification lists them.
type dhPair struct {
	priv ecc.ECPrivateKeyable
	pub  ecc.ECPublicKeyable
}

// agree runs the Diffie-Hellmans in order and derives the keys with ss.
func agree(pairs []dhPair, ss []byte) (*session.KeyPair, error) {
	if len(ss) != mlkem.SharedKeySize {
		return nil, errors.New("e2e: PQXDH: KEM shared secret is not 32 bytes")
	}
	dhs := make([][]byte, 0, len(pairs))
	defer func() {
		for _, s := range dhs {
			clear(s)
		}
	}()
	for _, kp := range pairs {
		s, err := dh(kp.priv, kp.pub)
		if err != nil {
			return nil, err
		}
		dhs = append(dhs, s)
	}
	return pqxdhKeys(dhs, ss)
}
