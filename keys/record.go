package keys

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// recordVersion is the first byte of a stored device record: 2 adds the
// name, 3 the last-resort KEM prekey; version 1 records (no name) and 2
// records (no KEM prekey) are still read.
const recordVersion = 3

var errCorrupt = errors.New("keys: corrupt device record")

// kemRecordSize is the size of a stored KEM prekey: id (4, in a device
// record only), public key, signature.
const kemRecordSize = KemPublicKeySize + signatureSize

// encodeDevice lays a device out as
//
//	version(1) auth_key(32) identity(33) registration_id(4)
//	spk_id(4) spk_public(33) spk_signature(64) created_unix_ms(8)
//	name_len(2) name
//	has_kem(1) [kem_id(4) kem_public(1569) kem_signature(64)]
//
// All sizes were checked on the way in.
func encodeDevice(d Device) []byte {
	b := make([]byte, 0, fixedRecordSize+2+len(d.Name)+1+4+kemRecordSize)
	b = append(b, recordVersion)
	b = append(b, d.AuthKey...)
	b = append(b, d.IdentityKey...)
	b = binary.BigEndian.AppendUint32(b, d.RegistrationID)
	b = binary.BigEndian.AppendUint32(b, d.SignedPreKey.ID)
	b = append(b, d.SignedPreKey.PublicKey...)
	b = append(b, d.SignedPreKey.Signature...)
	b = binary.BigEndian.AppendUint64(b, uint64(d.Created.UnixMilli()))
	b = binary.BigEndian.AppendUint16(b, uint16(len(d.Name)))
	b = append(b, d.Name...)
	if d.KemLastResort == nil {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.BigEndian.AppendUint32(b, d.KemLastResort.ID)
	b = append(b, d.KemLastResort.PublicKey...)
	return append(b, d.KemLastResort.Signature...)
}

// fixedRecordSize is the size of a version 1 record, the fixed part of
// every record.
const fixedRecordSize = 1 + authKeySize + curveKeySize + 4 + 4 + curveKeySize + signatureSize + 8

// decodeDevice is the inverse of encodeDevice. It copies out of b.
func decodeDevice(id uint32, b []byte) (Device, error) {
	if len(b) < fixedRecordSize || b[0] < 1 || b[0] > recordVersion ||
		(b[0] == 1 && len(b) != fixedRecordSize) {
		return Device{}, fmt.Errorf("%w (%d bytes)", errCorrupt, len(b))
	}
	version := b[0]
	b = b[1:]
	take := func(n int) []byte {
		out := append([]byte(nil), b[:n]...)
		b = b[n:]
		return out
	}
	d := Device{ID: id}
	d.AuthKey = take(authKeySize)
	d.IdentityKey = take(curveKeySize)
	d.RegistrationID = binary.BigEndian.Uint32(take(4))
	d.SignedPreKey.ID = binary.BigEndian.Uint32(take(4))
	d.SignedPreKey.PublicKey = take(curveKeySize)
	d.SignedPreKey.Signature = take(signatureSize)
	d.Created = time.UnixMilli(int64(binary.BigEndian.Uint64(take(8))))
	if version < 2 {
		return d, nil
	}
	if len(b) < 2 || len(b) < 2+int(binary.BigEndian.Uint16(b)) {
		return Device{}, fmt.Errorf("%w (name)", errCorrupt)
	}
	nameLen := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if nameLen > 0 {
		d.Name = take(nameLen)
	}
	if version == 2 {
		if len(b) != 0 {
			return Device{}, fmt.Errorf("%w (name)", errCorrupt)
		}
		return d, nil
	}
	switch {
	case len(b) == 1 && b[0] == 0:
	case len(b) == 1+4+kemRecordSize && b[0] == 1:
		b = b[1:]
		k := &KemPreKey{ID: binary.BigEndian.Uint32(take(4))}
		k.PublicKey = take(KemPublicKeySize)
		k.Signature = take(signatureSize)
		d.KemLastResort = k
	default:
		return Device{}, fmt.Errorf("%w (KEM prekey)", errCorrupt)
	}
	return d, nil
}

// linkCodeKey is where a link code lives, by its SHA-256 (the code itself
// is never stored).
func linkCodeKey(hash []byte) []byte {
	return append([]byte("k/l/"), hash...)
}

// accountCodeKey holds the hash of the account's current link code: an
// account has at most one, so codes cannot pile up.
func accountCodeKey(a AccountID) []byte {
	return append([]byte("k/c/"), a[:]...)
}

// seenKey holds the last day (days since the epoch, UTC) a device opened a
// session.
func seenKey(a AccountID, dev uint32) []byte {
	k := append([]byte("k/s/"), a[:]...)
	return binary.BigEndian.AppendUint32(k, dev)
}

func accountKey(a AccountID) []byte {
	return append([]byte("k/a/"), a[:]...)
}

func deviceKey(a AccountID, dev uint32) []byte {
	k := append([]byte("k/d/"), a[:]...)
	return binary.BigEndian.AppendUint32(k, dev)
}

// devicePrefix bounds all device records of an account.
func devicePrefix(a AccountID) []byte {
	return append([]byte("k/d/"), a[:]...)
}

func preKeyPrefix(a AccountID, dev uint32) []byte {
	k := append([]byte("k/p/"), a[:]...)
	return binary.BigEndian.AppendUint32(k, dev)
}

func preKeyKey(a AccountID, dev, id uint32) []byte {
	return binary.BigEndian.AppendUint32(preKeyPrefix(a, dev), id)
}

// kemPreKeyPrefix bounds a device's one-time KEM prekeys.
func kemPreKeyPrefix(a AccountID, dev uint32) []byte {
	k := append([]byte("k/k/"), a[:]...)
	return binary.BigEndian.AppendUint32(k, dev)
}

func kemPreKeyKey(a AccountID, dev, id uint32) []byte {
	return binary.BigEndian.AppendUint32(kemPreKeyPrefix(a, dev), id)
}

// prefixEnd returns the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}
