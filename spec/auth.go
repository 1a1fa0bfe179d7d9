package spec

import (
	"encoding/binary"
	"errors"
)

// ExporterLabel is the TLS exporter label (RFC 8446, section 7.5) whose
// 32-byte output a device signs, binding its signature to one QUIC
// connection.
const ExporterLabel = "EXPORTER-pigeonhole-auth"

// ExporterLength is the number of exported bytes signed.
const ExporterLength = 32

// Sizes of identifiers and keys on the wire.
const (
	AccountIDSize       = 16
	AuthKeySize         = 32 // Ed25519 public key
	AuthSignatureSize   = 64 // Ed25519 signature
	ClientMessageIDSize = 16
	SignalKeySize       = 33 // 0x05 || Curve25519 public key
	SignalSignatureSize = 64 // XEdDSA
)

const (
	authContext     = "pigeonhole/1 device auth\x00"
	registerContext = "pigeonhole/1 register\x00"
)

var errExporterSize = errors.New("exporter value must be 32 bytes")

// AuthMessage returns the bytes a device signs with its auth key in
// SessionOpen (protocol.md, "Device authentication"):
//
//	"pigeonhole/1 device auth" 0x00 || exporter (32) || account id (16) || device id (uint32, BE)
func AuthMessage(exporter, accountID []byte, deviceID uint32) ([]byte, error) {
	if len(exporter) != ExporterLength {
		return nil, errExporterSize
	}
	if len(accountID) != AccountIDSize {
		return nil, errors.New("account id must be 16 bytes")
	}
	b := make([]byte, 0, len(authContext)+ExporterLength+AccountIDSize+4)
	b = append(b, authContext...)
	b = append(b, exporter...)
	b = append(b, accountID...)
	return binary.BigEndian.AppendUint32(b, deviceID), nil
}

// RegisterProof returns the bytes a new device signs with its auth key in
// RegisterRequest.auth_proof:
//
//	"pigeonhole/1 register" 0x00 || exporter (32) || auth key (32)
func RegisterProof(exporter, authKey []byte) ([]byte, error) {
	if len(exporter) != ExporterLength {
		return nil, errExporterSize
	}
	if len(authKey) != AuthKeySize {
		return nil, errors.New("auth key must be 32 bytes")
	}
	b := make([]byte, 0, len(registerContext)+ExporterLength+AuthKeySize)
	b = append(b, registerContext...)
	b = append(b, exporter...)
	return append(b, authKey...), nil
}
