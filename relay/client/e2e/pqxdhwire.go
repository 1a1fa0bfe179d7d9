package e2e

import (
	"encoding/binary"
	"fmt"

	"go.mau.fi/libsignal/protocol"
)

// TypePQXDH is the DeviceMessage (and Envelope) type of the first
// message of a session started with PQXDH. It is Pigeonhole's own
// number: the lowest one that neither Signal (2, 3, 7, 8 in libsignal's
// CiphertextMessageType) nor go.mau.fi/libsignal (2 to 5) uses. Its
// content is a pqxdhMessage; spec/protocol.md, "PQXDH session start", is the specification.
const TypePQXDH = 6

// pqxdhWireVersion is the first byte of a TypePQXDH content. A receiver
// refuses any other value.
const pqxdhWireVersion = 1

// pqxdhHeaderSize is the bytes before the prekey message: version (1),
// KEM prekey id (4, big-endian), encoded KEM ciphertext.
const pqxdhHeaderSize = 1 + 4 + KEMCiphertextSize

// pqxdhMessage is the content of a TypePQXDH message:
//
//	version        1 byte, pqxdhWireVersion
//	kem_prekey_id  4 bytes, big-endian: the responder's KEM prekey
//	kem_ciphertext KEMCiphertextSize bytes: KEMKeyType, then the
//	               ML-KEM-1024 ciphertext (1568 bytes)
//	prekey_message the rest: libsignal's PreKeySignalMessage (version 3),
//	               as a TypePreKey message carries it
//
// Signal carries the KEM prekey id and ciphertext inside its own
// PreKeySignalMessage (fields 7 and 8, message version 4); libsignal for
// Go has neither the fields nor version 4, so they go in front of its
// message instead. They are not covered by a MAC of their own: changing
// either changes SS, so the responder derives other keys and the
// embedded message's MAC fails.
type pqxdhMessage struct {
	kemPreKeyID uint32
	ciphertext  []byte // KEMCiphertextSize bytes
	prekey      *protocol.PreKeySignalMessage
}

func (m *pqxdhMessage) marshal() []byte {
	inner := m.prekey.Serialize()
	b := make([]byte, 0, pqxdhHeaderSize+len(inner))
	b = append(b, pqxdhWireVersion)
	b = binary.BigEndian.AppendUint32(b, m.kemPreKeyID)
	b = append(b, m.ciphertext...)
	return append(b, inner...)
}

// parsePQXDH decodes a TypePQXDH content, hostile bytes.
func parsePQXDH(b []byte) (*pqxdhMessage, error) {
	if len(b) < pqxdhHeaderSize {
		return nil, fmt.Errorf("e2e: malformed PQXDH message: %d bytes", len(b))
	}
	if b[0] != pqxdhWireVersion {
		return nil, fmt.Errorf("e2e: malformed PQXDH message: version %d", b[0])
	}
	ct := b[5:pqxdhHeaderSize]
	if ct[0] != KEMKeyType {
		return nil, fmt.Errorf("e2e: malformed PQXDH message: KEM type %#x", ct[0])
	}
	pk, err := protocol.NewPreKeySignalMessageFromBytes(b[pqxdhHeaderSize:], ser.PreKeySignalMessage, ser.SignalMessage)
	if err != nil {
		return nil, fmt.Errorf("e2e: malformed PQXDH message: %w", err)
	}
	return &pqxdhMessage{
		kemPreKeyID: binary.BigEndian.Uint32(b[1:5]),
		ciphertext:  ct,
		prekey:      pk,
	}, nil
}
