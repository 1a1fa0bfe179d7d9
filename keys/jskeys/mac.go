package jskeys

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"slices"
)

// ClusterKeySize is the size of the cluster key, in bytes.
const ClusterKeySize = 32

// macSize is the size of the tag after every record's value.
const macSize = sha256.Size

// recordInfo is the HKDF info label of the records' MAC key; other users
// of the cluster key derive theirs with labels of their own.
const recordInfo = "pigeonhole jskeys record mac v1"

// macer authenticates the bucket's records: a stored value is the record
// followed by HMAC-SHA256(k, len‖bucket ‖ len‖key ‖ record), where k is
// derived from the cluster key with HKDF-SHA256 (no salt, info
// recordInfo) and len is a 4-byte big-endian length. So a record cannot
// be changed, nor moved to another key or bucket, without the key.
type macer struct {
	key    []byte
	bucket string
}

func newMacer(clusterKey []byte, bucket string) (*macer, error) {
	if len(clusterKey) == 0 {
		return nil, ErrNoClusterKey
	}
	if len(clusterKey) != ClusterKeySize {
		return nil, fmt.Errorf("jskeys: the cluster key is %d bytes, want %d", len(clusterKey), ClusterKeySize)
	}
	k, err := hkdf.Key(sha256.New, clusterKey, nil, recordInfo, sha256.Size)
	if err != nil {
		return nil, fmt.Errorf("jskeys: derive record key: %w", err)
	}
	return &macer{key: k, bucket: bucket}, nil
}

func writeField(h hash.Hash, s string) {
	h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(s))))
	h.Write([]byte(s))
}

func (m *macer) sum(key string, val []byte) []byte {
	h := hmac.New(sha256.New, m.key)
	writeField(h, m.bucket)
	writeField(h, key)
	h.Write(val)
	return h.Sum(nil)
}

// seal returns val with its tag for key.
func (m *macer) seal(key string, val []byte) []byte {
	return append(slices.Clip(val), m.sum(key, val)...)
}

// open checks stored's tag for key and returns the record without it.
func (m *macer) open(key string, stored []byte) ([]byte, error) {
	if len(stored) < macSize {
		return nil, ErrBadRecord
	}
	val, tag := stored[:len(stored)-macSize], stored[len(stored)-macSize:]
	if !hmac.Equal(tag, m.sum(key, val)) {
		return nil, ErrBadRecord
	}
	return val, nil
}

// recordKind names a record's kind by its key, for logs and metrics
// (never the key itself: it holds an account id).
func recordKind(key string) string {
	switch key[:1] {
	case "a":
		return "account"
	case "p":
		return "prekeys"
	case "q":
		return "kem_prekey_index"
	case "k":
		return "kem_prekey"
	case "s":
		return "seen"
	case "u":
		return "access"
	}
	return "other"
}
