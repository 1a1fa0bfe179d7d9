package relay

import (
	"encoding/binary"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/pigeonhole/pigeonhole/keys"
	"github.com/pigeonhole/pigeonhole/spec"
)

// Field numbers of spec.Envelope and spec.ServerEvent used by the hand
// encoding below; TestEnvelopeEncoding checks the result decodes with the
// generated code.
const (
	envSeqField       = 1
	envSenderField    = 2
	envSenderDevField = 3
	envTimeField      = 4
	envTypeField      = 5
	envContentField   = 6
	envMsgIDField     = 7
	envSealedField    = 20
	eventEnvField     = 2
)

// encodeStoredEnvelope encodes the part of an Envelope known at send time.
// The queue stores these bytes; seq and timestamp are prepended at
// delivery (protobuf allows fields in any order), so delivery never
// decodes or copies the ciphertext twice.
func encodeStoredEnvelope(sender keys.AccountID, senderDev, typ uint32, content, msgID []byte) []byte {
	b := make([]byte, 0, len(content)+len(msgID)+48)
	b = protowire.AppendTag(b, envSenderField, protowire.BytesType)
	b = protowire.AppendBytes(b, sender[:])
	b = protowire.AppendTag(b, envSenderDevField, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(senderDev))
	if typ != 0 {
		b = protowire.AppendTag(b, envTypeField, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(typ))
	}
	b = protowire.AppendTag(b, envContentField, protowire.BytesType)
	b = protowire.AppendBytes(b, content)
	b = protowire.AppendTag(b, envMsgIDField, protowire.BytesType)
	return protowire.AppendBytes(b, msgID)
}

// encodeSealedEnvelope is encodeStoredEnvelope for a sealed send: no
// sender fields and no type, and the sealed flag.
func encodeSealedEnvelope(content, msgID []byte) []byte {
	b := make([]byte, 0, len(content)+len(msgID)+16)
	b = protowire.AppendTag(b, envContentField, protowire.BytesType)
	b = protowire.AppendBytes(b, content)
	b = protowire.AppendTag(b, envMsgIDField, protowire.BytesType)
	b = protowire.AppendBytes(b, msgID)
	b = protowire.AppendTag(b, envSealedField, protowire.VarintType)
	return protowire.AppendVarint(b, 1)
}

// appendEnvelopeFrame appends a framed ServerEvent{envelope} to b.
func appendEnvelopeFrame(b []byte, seq uint64, unixMilli int64, stored []byte) []byte {
	head := make([]byte, 0, 24)
	head = protowire.AppendTag(head, envSeqField, protowire.VarintType)
	head = protowire.AppendVarint(head, seq)
	head = protowire.AppendTag(head, envTimeField, protowire.VarintType)
	head = protowire.AppendVarint(head, uint64(unixMilli))
	inner := len(head) + len(stored)
	outer := protowire.SizeTag(eventEnvField) + protowire.SizeBytes(inner)
	b = binary.BigEndian.AppendUint32(b, uint32(outer))
	b = protowire.AppendTag(b, eventEnvField, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(inner))
	b = append(b, head...)
	return append(b, stored...)
}

// preKeysLowEvent tells a device how many one-time X25519 and KEM
// prekeys it has left.
func preKeysLowEvent(remaining, kemRemaining int) *spec.ServerEvent {
	return &spec.ServerEvent{Body: &spec.ServerEvent_PrekeysLow{PrekeysLow: &spec.PreKeysLow{
		Remaining: uint32(remaining), KemRemaining: uint32(kemRemaining),
	}}}
}
