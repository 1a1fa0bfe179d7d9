package e2e

import (
	"crypto/mlkem"

	"go.mau.fi/libsignal/ecc"
	"go.mau.fi/libsignal/keys/chain"
	"go.mau.fi/libsignal/keys/root"
	"go.mau.fi/libsignal/keys/session"
)

// Hooks for the external tests: the PQXDH key derivation on fixed keys,
// and the TypePQXDH decoder.

func pub(b []byte) ecc.ECPublicKeyable {
	if b == nil {
		return nil
	}
	return ecc.NewDjbECPublicKey([32]byte(b))
}

func priv(b []byte) ecc.ECPrivateKeyable {
	if b == nil {
		return nil
	}
	return ecc.NewDjbECPrivateKey([32]byte(b))
}

func keyBytes(k *session.KeyPair) (rootKey, chainKey []byte) {
	return k.RootKey.(*root.Key).Bytes(), k.ChainKey.(*chain.Key).Key()
}

// PQXDHInitiatorKeys runs Alice's derivation: private keys are 32 bytes,
// public keys the 32 bytes after Signal's 0x05, opkB nil for none.
func PQXDHInitiatorKeys(ikA, ekA, ikB, spkB, opkB, ss []byte) (rootKey, chainKey []byte, err error) {
	k, err := initiatorKeys(initiatorParams{identity: priv(ikA), base: priv(ekA), theirID: pub(ikB), signed: pub(spkB), oneTime: pub(opkB), kemSecret: ss})
	if err != nil {
		return nil, nil, err
	}
	rootKey, chainKey = keyBytes(k)
	return rootKey, chainKey, nil
}

// PQXDHResponderKeys runs Bob's derivation, decapsulating ct (the
// 1568-byte ML-KEM-1024 ciphertext) with the KEM prekey seed the way
// acceptPQXDH does.
func PQXDHResponderKeys(ikB, spkB, opkB, ikA, ekA, kemSeed, ct []byte) (rootKey, chainKey, ss []byte, err error) {
	dk, err := mlkem.NewDecapsulationKey1024(kemSeed)
	if err != nil {
		return nil, nil, nil, err
	}
	if ss, err = dk.Decapsulate(ct); err != nil {
		return nil, nil, nil, err
	}
	k, err := responderKeys(responderParams{identity: priv(ikB), signed: priv(spkB), oneTime: priv(opkB), theirID: pub(ikA), base: pub(ekA), kemSecret: ss})
	if err != nil {
		return nil, nil, nil, err
	}
	rootKey, chainKey = keyBytes(k)
	return rootKey, chainKey, ss, nil
}

// ParsePQXDH decodes a TypePQXDH content and encodes it again.
func ParsePQXDH(b []byte) (kemPreKeyID uint32, ciphertext, prekeyMessage, again []byte, err error) {
	m, err := parsePQXDH(b)
	if err != nil {
		return 0, nil, nil, nil, err
	}
	return m.kemPreKeyID, m.ciphertext, m.prekey.Serialize(), m.marshal(), nil
}
