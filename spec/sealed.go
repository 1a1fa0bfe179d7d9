package spec

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
)

// Sealed sender (protocol.md, "Sealed sender").
const (
	// AccessKeySize is the size of an unidentified-access key.
	AccessKeySize = 16
	// AccessVerifierSize is the size of the verifier the relay keeps.
	AccessVerifierSize = sha256.Size
	// SealedVersion is the first byte of a sealed message: Signal's
	// sealed sender v1 (major version 1 in the high nibble, 1 in the low).
	SealedVersion = 0x11
	// ServerCertKeySize is the size of a server certificate key
	// (Ed25519 public key).
	ServerCertKeySize = 32
)

const (
	senderCertContext     = "pigeonhole/1 sender certificate\x00"
	accessVerifierContext = "pigeonhole/1 unidentified access verifier"
)

// SenderCertificateMessage returns the bytes a server certificate key
// signs for a sender certificate:
//
//	"pigeonhole/1 sender certificate" 0x00 || certificate (an encoded SenderCertificateBody)
func SenderCertificateMessage(certificate []byte) []byte {
	b := make([]byte, 0, len(senderCertContext)+len(certificate))
	b = append(b, senderCertContext...)
	return append(b, certificate...)
}

// AccessVerifier returns the verifier of an unidentified-access key, the
// value an account sets on the relay with set_unidentified_access and the
// relay recomputes from a sealed send's key:
//
//	HMAC-SHA256(key = access key, "pigeonhole/1 unidentified access verifier")
func AccessVerifier(accessKey []byte) ([]byte, error) {
	if len(accessKey) != AccessKeySize {
		return nil, errors.New("access key must be 16 bytes")
	}
	m := hmac.New(sha256.New, accessKey)
	m.Write([]byte(accessVerifierContext))
	return m.Sum(nil), nil
}
