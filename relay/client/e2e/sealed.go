package e2e

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/spec"
)

// Sealed sender v1 (protocol.md, "Sealed messages"), written from
// Signal's published description (signal.org/blog/sealed-sender, and the
// pseudocode in libsignal's rust/protocol/src/sealed_sender.rs):
//
//	e_pub, e_priv            = X25519 key pair, fresh per message
//	e_chain, e_ck, e_mk      = HKDF-SHA256(salt = "UnidentifiedDelivery" || recipient_identity || e_pub,
//	                                       ikm = X25519(e_priv, recipient_identity), info = "")[0:96]
//	encrypted_static         = AES-256-CTR(e_ck, iv 0, sender_identity) || HMAC-SHA256(e_mk, ·)[0:10]
//	_, s_ck, s_mk            = HKDF-SHA256(salt = e_chain || encrypted_static,
//	                                       ikm = X25519(sender_identity_priv, recipient_identity), info = "")[0:96]
//	encrypted_message        = AES-256-CTR(s_ck, iv 0, SealedContent) || HMAC-SHA256(s_mk, ·)[0:10]
//	sealed                   = 0x11 || SealedMessage{e_pub, encrypted_static, encrypted_message}
//
// Identity and ephemeral public keys are in Signal's 33-byte encoding
// (0x05 || X25519). This is Signal's v1 AEAD, AES-256-CTR then
// HMAC-SHA256 truncated to 10 bytes, kept as published so that the
// construction is exactly the one Signal analysed and other
// implementations can check these bytes; every key is used for one
// message only (each comes from a fresh ephemeral key), so the zero IV
// never repeats under a key.

// Errors of sealed messages.
var (
	// ErrSealed means a sealed message is malformed or does not open with
	// this device's identity key (a MAC failed).
	ErrSealed = errors.New("e2e: the sealed message does not open")
	// ErrCertificate means a sealed message's sender certificate is
	// refused: not signed by a trusted server key, expired, malformed, or
	// for another identity key than the one the message was sealed with.
	ErrCertificate = errors.New("e2e: the sender certificate is refused")
	// ErrNoIdentity means Seal has no trusted identity key for the
	// recipient (no session was ever started with it).
	ErrNoIdentity = errors.New("e2e: no identity key is known for the recipient")
)

const (
	sealedSaltPrefix = "UnidentifiedDelivery"
	sealedMACSize    = 10
)

// ServerKeys are the server certificate keys a client trusts to sign
// sender certificates, by key id: those of the relay it pinned.
type ServerKeys map[uint32]ed25519.PublicKey

// ctrHMAC is aes256_ctr_hmacsha256_encrypt: AES-256-CTR with a zero IV,
// then the first 10 bytes of HMAC-SHA256 over the ciphertext.
func ctrHMAC(cipherKey, macKey, plain []byte) ([]byte, error) {
	block, err := aes.NewCipher(cipherKey)
	if err != nil {
		return nil, err
	}
	out := make([]byte, len(plain), len(plain)+sealedMACSize)
	cipher.NewCTR(block, make([]byte, aes.BlockSize)).XORKeyStream(out, plain)
	m := hmac.New(sha256.New, macKey)
	m.Write(out)
	return append(out, m.Sum(nil)[:sealedMACSize]...), nil
}

// openCTRHMAC checks the 10-byte tag in constant time and decrypts.
func openCTRHMAC(cipherKey, macKey, sealed []byte) ([]byte, error) {
	if len(sealed) < sealedMACSize {
		return nil, ErrSealed
	}
	ct, tag := sealed[:len(sealed)-sealedMACSize], sealed[len(sealed)-sealedMACSize:]
	m := hmac.New(sha256.New, macKey)
	m.Write(ct)
	if !hmac.Equal(m.Sum(nil)[:sealedMACSize], tag) {
		return nil, ErrSealed
	}
	block, err := aes.NewCipher(cipherKey)
	if err != nil {
		return nil, err
	}
	out := make([]byte, len(ct))
	cipher.NewCTR(block, make([]byte, aes.BlockSize)).XORKeyStream(out, ct)
	return out, nil
}

// x25519 is the agreement on raw 32-byte keys; an all-zero output (a
// low-order public key) is refused.
func x25519(priv, pub []byte) ([]byte, error) {
	sk, err := ecdh.X25519().NewPrivateKey(priv)
	if err != nil {
		return nil, err
	}
	pk, err := ecdh.X25519().NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return sk.ECDH(pk)
}

// derive96 is HKDF-SHA256 with an empty info, cut into three 32-byte keys.
func derive96(shared, salt []byte) (a, b, c []byte, err error) {
	k, err := hkdf.Key(sha256.New, shared, salt, "", 96)
	if err != nil {
		return nil, nil, nil, err
	}
	return k[:32], k[32:64], k[64:], nil
}

// signalKey checks a 33-byte Signal public key and returns its X25519 part.
func signalKey(k []byte) ([]byte, bool) {
	if len(k) != spec.SignalKeySize || k[0] != 0x05 {
		return nil, false
	}
	return k[1:], true
}

// sealV1 seals plain from the sender identity (private key and 33-byte
// public key) to the recipient's 33-byte identity key, with the given
// ephemeral private key.
func sealV1(senderPriv, senderPub, recipientPub, ephPriv, plain []byte) ([]byte, error) {
	rx, ok := signalKey(recipientPub)
	if !ok {
		return nil, fmt.Errorf("%w: the recipient identity key is not a Signal key", ErrSealed)
	}
	esk, err := ecdh.X25519().NewPrivateKey(ephPriv)
	if err != nil {
		return nil, err
	}
	ephPub := append([]byte{0x05}, esk.PublicKey().Bytes()...)
	shared, err := x25519(ephPriv, rx)
	if err != nil {
		return nil, err
	}
	salt := append(append([]byte(sealedSaltPrefix), recipientPub...), ephPub...)
	chain, eck, emk, err := derive96(shared, salt)
	if err != nil {
		return nil, err
	}
	encStatic, err := ctrHMAC(eck, emk, senderPub)
	if err != nil {
		return nil, err
	}
	shared2, err := x25519(senderPriv, rx)
	if err != nil {
		return nil, err
	}
	_, sck, smk, err := derive96(shared2, append(append([]byte(nil), chain...), encStatic...))
	if err != nil {
		return nil, err
	}
	encMsg, err := ctrHMAC(sck, smk, plain)
	if err != nil {
		return nil, err
	}
	body, err := proto.MarshalOptions{Deterministic: true}.Marshal(&spec.SealedMessage{
		EphemeralPublic: ephPub, EncryptedStatic: encStatic, EncryptedMessage: encMsg,
	})
	if err != nil {
		return nil, err
	}
	return append([]byte{spec.SealedVersion}, body...), nil
}

// openV1 opens a sealed message with the recipient's identity (private
// key and 33-byte public key) and returns the sender's 33-byte identity
// key and the plaintext.
func openV1(recipientPriv, recipientPub, sealed []byte) (senderPub, plain []byte, err error) {
	if len(sealed) < 1 || sealed[0] != spec.SealedVersion {
		return nil, nil, fmt.Errorf("%w: not a sealed sender v1 message", ErrSealed)
	}
	var m spec.SealedMessage
	if proto.Unmarshal(sealed[1:], &m) != nil {
		return nil, nil, fmt.Errorf("%w: malformed", ErrSealed)
	}
	ex, ok := signalKey(m.EphemeralPublic)
	if !ok {
		return nil, nil, fmt.Errorf("%w: bad ephemeral key", ErrSealed)
	}
	shared, err := x25519(recipientPriv, ex)
	if err != nil {
		return nil, nil, ErrSealed
	}
	salt := append(append([]byte(sealedSaltPrefix), recipientPub...), m.EphemeralPublic...)
	chain, eck, emk, err := derive96(shared, salt)
	if err != nil {
		return nil, nil, err
	}
	senderPub, err = openCTRHMAC(eck, emk, m.EncryptedStatic)
	if err != nil {
		return nil, nil, err
	}
	sx, ok := signalKey(senderPub)
	if !ok {
		return nil, nil, fmt.Errorf("%w: bad sender identity key", ErrSealed)
	}
	shared2, err := x25519(recipientPriv, sx)
	if err != nil {
		return nil, nil, ErrSealed
	}
	_, sck, smk, err := derive96(shared2, append(append([]byte(nil), chain...), m.EncryptedStatic...))
	if err != nil {
		return nil, nil, err
	}
	plain, err = openCTRHMAC(sck, smk, m.EncryptedMessage)
	if err != nil {
		return nil, nil, err
	}
	return senderPub, plain, nil
}

// VerifySenderCertificate checks an encoded spec.SenderCertificate: its
// signature by the trusted server key its body names, and its expiry at
// now. It returns the body.
func VerifySenderCertificate(raw []byte, trusted ServerKeys, now time.Time) (*spec.SenderCertificateBody, error) {
	var sc spec.SenderCertificate
	if proto.Unmarshal(raw, &sc) != nil {
		return nil, fmt.Errorf("%w: malformed", ErrCertificate)
	}
	var body spec.SenderCertificateBody
	if proto.Unmarshal(sc.Certificate, &body) != nil {
		return nil, fmt.Errorf("%w: malformed body", ErrCertificate)
	}
	pub, ok := trusted[body.KeyId]
	if !ok || len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: signed by server key %d, which is not trusted", ErrCertificate, body.KeyId)
	}
	if !ed25519.Verify(pub, spec.SenderCertificateMessage(sc.Certificate), sc.Signature) {
		return nil, fmt.Errorf("%w: the signature does not verify", ErrCertificate)
	}
	if !now.Before(time.UnixMilli(body.ExpiresMs)) {
		return nil, fmt.Errorf("%w: expired", ErrCertificate)
	}
	if len(body.AccountId) != spec.AccountIDSize || len(body.IdentityKey) != spec.SignalKeySize {
		return nil, fmt.Errorf("%w: malformed body", ErrCertificate)
	}
	return &body, nil
}

// Seal wraps each per-device ciphertext of one send (from Encrypt) in a
// sealed message to the recipient account's trusted identity key,
// carrying cert (this device's sender certificate, client.SenderCertificate.Raw).
// The results go in a sealed send; their Type is 0.
func (d *Device) Seal(account []byte, msgs []client.DeviceMessage, cert []byte) ([]client.DeviceMessage, error) {
	var recipient []byte
	err := d.update(func(s *txStore) (err error) {
		recipient, err = s.tx.Get(identitiesDir + addressName(account))
		return err
	})
	if err != nil {
		return nil, err
	}
	if recipient == nil {
		return nil, ErrNoIdentity
	}
	priv := d.ident.PrivateKey().Serialize()
	pub := d.ident.PublicKey().Serialize()
	out := make([]client.DeviceMessage, len(msgs))
	for i, m := range msgs {
		inner, err := proto.Marshal(&spec.SealedContent{Type: m.Type, SenderCertificate: cert, Content: m.Content})
		if err != nil {
			return nil, err
		}
		eph := make([]byte, 32)
		if _, err := rand.Read(eph); err != nil {
			return nil, err
		}
		sealed, err := sealV1(priv[:], pub, recipient, eph, inner)
		if err != nil {
			return nil, err
		}
		out[i] = client.DeviceMessage{DeviceID: m.DeviceID, Content: sealed}
	}
	return out, nil
}

// OpenSealed opens a sealed envelope with this device's identity key and
// verifies its sender certificate: signed by a key in trusted, not
// expired at now, and for the identity key the message was sealed with
// (the recipient refuses it otherwise). It returns the envelope as an
// identified one (Sender, SenderDevice and Type from inside the seal,
// Sealed still true), ready for Decrypt or DecryptGroup.
func (d *Device) OpenSealed(env *client.Envelope, trusted ServerKeys, now time.Time) (*client.Envelope, error) {
	priv := d.ident.PrivateKey().Serialize()
	senderPub, plain, err := openV1(priv[:], d.ident.PublicKey().Serialize(), env.Content)
	if err != nil {
		return nil, err
	}
	var sc spec.SealedContent
	if proto.Unmarshal(plain, &sc) != nil {
		return nil, fmt.Errorf("%w: malformed content", ErrSealed)
	}
	body, err := VerifySenderCertificate(sc.SenderCertificate, trusted, now)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(body.IdentityKey, senderPub) != 1 {
		return nil, fmt.Errorf("%w: it is for another identity key than the message's", ErrCertificate)
	}
	return &client.Envelope{
		Seq: env.Seq, Sender: body.AccountId, SenderDevice: body.DeviceId, TimestampMillis: env.TimestampMillis,
		Type: sc.Type, Content: sc.Content, ClientMessageID: env.ClientMessageID, Sealed: true,
	}, nil
}

// NewAccessKey returns a fresh random unidentified-access key: the
// account shares it with its contacts inside E2E messages
// (spec.Content.access_key) and sets its verifier on the relay.
func NewAccessKey() ([]byte, error) {
	k := make([]byte, spec.AccessKeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	return k, nil
}
