package natscluster

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"slices"
)

// ClusterKeySize is the size of the cluster key, in bytes.
const ClusterKeySize = 32

// ErrNoClusterKey means New was given no cluster key.
var ErrNoClusterKey = errors.New("natscluster: no cluster key")

// HKDF info labels: one key per purpose, each distinct from the key
// directory's ("pigeonhole jskeys record mac v1").
const (
	presenceInfo = "pigeonhole natscluster presence mac v1"
	controlInfo  = "pigeonhole natscluster control mac v1"
)

// macHeader carries a control message's tag (base64, unpadded).
const macHeader = "Ph-Mac"

const macSize = sha256.Size

// macKeys are the keys derived from the cluster key.
type macKeys struct{ presence, control []byte }

func deriveKeys(clusterKey []byte) (macKeys, error) {
	if len(clusterKey) == 0 {
		return macKeys{}, ErrNoClusterKey
	}
	if len(clusterKey) != ClusterKeySize {
		return macKeys{}, fmt.Errorf("natscluster: the cluster key is %d bytes, want %d", len(clusterKey), ClusterKeySize)
	}
	p, err := hkdf.Key(sha256.New, clusterKey, nil, presenceInfo, sha256.Size)
	if err != nil {
		return macKeys{}, fmt.Errorf("natscluster: derive presence key: %w", err)
	}
	c, err := hkdf.Key(sha256.New, clusterKey, nil, controlInfo, sha256.Size)
	if err != nil {
		return macKeys{}, fmt.Errorf("natscluster: derive control key: %w", err)
	}
	return macKeys{presence: p, control: c}, nil
}

// sum is HMAC-SHA256 under key of each field, length-prefixed (4 bytes,
// big-endian), so no two field lists give the same input.
func sum(key []byte, fields ...[]byte) []byte {
	h := hmac.New(sha256.New, key)
	for _, f := range fields {
		writeField(h, f)
	}
	return h.Sum(nil)
}

func writeField(h hash.Hash, f []byte) {
	h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(f))))
	h.Write(f)
}

// sealPresence returns a presence record's stored value: val, then
// HMAC(presence key, bucket, key, val).
func (c *Cluster) sealPresence(key string, val []byte) []byte {
	return append(slices.Clip(val), sum(c.keys.presence, []byte(c.cfg.Bucket), []byte(key), val)...)
}

// openPresence checks a stored presence value and returns the record;
// false if its tag does not verify.
func (c *Cluster) openPresence(key string, stored []byte) ([]byte, bool) {
	if len(stored) < macSize {
		return nil, false
	}
	val, tag := stored[:len(stored)-macSize], stored[len(stored)-macSize:]
	return val, hmac.Equal(tag, sum(c.keys.presence, []byte(c.cfg.Bucket), []byte(key), val))
}

// controlTag is a control message's tag: HMAC(control key, subject,
// origin relay, data).
func (c *Cluster) controlTag(subj, origin string, data []byte) string {
	return base64.RawStdEncoding.EncodeToString(sum(c.keys.control, []byte(subj), []byte(origin), data))
}

// controlOK reports whether a received control message carries a valid
// tag.
func (c *Cluster) controlOK(subj, origin, tag string, data []byte) bool {
	got, err := base64.RawStdEncoding.DecodeString(tag)
	if err != nil || len(got) != macSize {
		return false
	}
	want := sum(c.keys.control, []byte(subj), []byte(origin), data)
	return hmac.Equal(got, want)
}

// rejected counts and logs (without identifiers) a presence record or a
// control message that failed its check.
func (c *Cluster) rejected(kind string) {
	c.log.Warn("cluster: dropping a "+kind+" message that fails its cluster-key check (sent without the cluster key)", "kind", kind)
	if c.cfg.Rejected != nil {
		c.cfg.Rejected(kind)
	}
}
