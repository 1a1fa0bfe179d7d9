package relay

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pigeonhole/pigeonhole/keys"
	"github.com/pigeonhole/pigeonhole/spec"
)

// Server certificate keys (protocol.md, "Sender certificates"): Ed25519
// keys in the data directory, one file each, named by key id
// (sender-cert-key-ID.pem, mode 0600). The highest id signs; older ones
// are still listed to clients until every certificate they signed has
// expired.

// senderCertPEMType is the PEM block type of a key file; its bytes are
// the 32-byte Ed25519 seed.
const senderCertPEMType = "PIGEONHOLE SENDER CERTIFICATE KEY"

// senderCertFilePrefix and senderCertFileSuffix frame a key file's id.
const (
	senderCertFilePrefix = "sender-cert-key-"
	senderCertFileSuffix = ".pem"
)

// SenderCertKey is one server certificate key.
type SenderCertKey struct {
	ID      uint32
	Created time.Time // when the key file was made
	priv    ed25519.PrivateKey
}

// Public returns the key's Ed25519 public key, the value clients pin.
func (k SenderCertKey) Public() ed25519.PublicKey { return k.priv.Public().(ed25519.PublicKey) }

// String is the key id and public key in hex, as pigeonhole prints them.
func (k SenderCertKey) String() string {
	return strconv.FormatUint(uint64(k.ID), 10) + " " + hex.EncodeToString(k.Public())
}

// SenderCertKeys are the relay's server certificate keys, ascending by
// id; the last one signs.
type SenderCertKeys struct {
	keys   []SenderCertKey
	loaded time.Time // when this process loaded them: the old keys stopped signing by then
}

// LoadOrCreateSenderCertKeys loads the server certificate keys from dir,
// creating key 1 on first start.
func LoadOrCreateSenderCertKeys(dir string) (*SenderCertKeys, error) {
	k, err := LoadSenderCertKeys(dir)
	if err == nil {
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if _, err := RotateSenderCertKey(dir, time.Now()); err != nil {
		return nil, err
	}
	return LoadSenderCertKeys(dir)
}

// LoadSenderCertKeys loads the server certificate keys from dir; with
// none there it returns an error wrapping os.ErrNotExist.
func LoadSenderCertKeys(dir string) (*SenderCertKeys, error) {
	names, err := filepath.Glob(filepath.Join(dir, senderCertFilePrefix+"*"+senderCertFileSuffix))
	if err != nil {
		return nil, fmt.Errorf("sender certificate keys: %w", err)
	}
	out := &SenderCertKeys{loaded: time.Now()}
	for _, name := range names {
		k, err := readSenderCertKey(name)
		if err != nil {
			return nil, err
		}
		out.keys = append(out.keys, k)
	}
	if len(out.keys) == 0 {
		return nil, fmt.Errorf("no sender certificate key in %s: %w", dir, os.ErrNotExist)
	}
	slices.SortFunc(out.keys, func(a, b SenderCertKey) int { return int(int64(a.ID) - int64(b.ID)) })
	return out, nil
}

func readSenderCertKey(name string) (SenderCertKey, error) {
	base := filepath.Base(name)
	idText := strings.TrimSuffix(strings.TrimPrefix(base, senderCertFilePrefix), senderCertFileSuffix)
	id, err := strconv.ParseUint(idText, 10, 32)
	if err != nil || id == 0 {
		return SenderCertKey{}, fmt.Errorf("sender certificate key %s: the name has no key id", base)
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return SenderCertKey{}, fmt.Errorf("sender certificate key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != senderCertPEMType || len(blk.Bytes) != ed25519.SeedSize {
		return SenderCertKey{}, fmt.Errorf("sender certificate key %s: not a %s block of %d bytes", base, senderCertPEMType, ed25519.SeedSize)
	}
	created, err := time.Parse(time.RFC3339, blk.Headers["Created"])
	if err != nil {
		return SenderCertKey{}, fmt.Errorf("sender certificate key %s: bad Created header: %w", base, err)
	}
	return SenderCertKey{ID: uint32(id), Created: created, priv: ed25519.NewKeyFromSeed(blk.Bytes)}, nil
}

// RotateSenderCertKey writes a new server certificate key to dir, with
// the next key id, and returns it. A running relay signs with it after
// its next start; the keys before it stay listed until their
// certificates have expired.
func RotateSenderCertKey(dir string, now time.Time) (SenderCertKey, error) {
	next := uint32(1)
	if k, err := LoadSenderCertKeys(dir); err == nil {
		next = k.Current().ID + 1
	} else if !errors.Is(err, os.ErrNotExist) {
		return SenderCertKey{}, err
	}
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return SenderCertKey{}, fmt.Errorf("generate sender certificate key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return SenderCertKey{}, fmt.Errorf("create data directory: %w", err)
	}
	created := now.UTC().Truncate(time.Second)
	blk := &pem.Block{Type: senderCertPEMType, Headers: map[string]string{"Created": created.Format(time.RFC3339)}, Bytes: seed}
	name := filepath.Join(dir, senderCertFilePrefix+strconv.FormatUint(uint64(next), 10)+senderCertFileSuffix)
	if err := writeFileAtomic(name, pem.EncodeToMemory(blk), 0o600); err != nil {
		return SenderCertKey{}, err
	}
	return SenderCertKey{ID: next, Created: created, priv: ed25519.NewKeyFromSeed(seed)}, nil
}

// Current is the key that signs.
func (k *SenderCertKeys) Current() SenderCertKey { return k.keys[len(k.keys)-1] }

// Listed returns the keys a client may need to verify a certificate at
// now, newest first: the current key, and every older key that may have
// signed a certificate less than lifetime (the certificate lifetime)
// ago. A key stops signing when its successor is loaded: for the one
// before the current key, at the latest when these keys were loaded;
// for older ones, when their successor was made (rotation is followed
// by a restart).
func (k *SenderCertKeys) Listed(now time.Time, lifetime time.Duration) []SenderCertKey {
	out := []SenderCertKey{k.Current()}
	for i := len(k.keys) - 2; i >= 0; i-- {
		stopped := k.keys[i+1].Created
		if i == len(k.keys)-2 && k.loaded.After(stopped) {
			stopped = k.loaded
		}
		if now.Sub(stopped) >= lifetime {
			continue
		}
		out = append(out, k.keys[i])
	}
	return out
}

// sign issues a certificate for one device, valid until expires.
func (k *SenderCertKeys) sign(acct keys.AccountID, dev uint32, identity []byte, expires time.Time) (*spec.SenderCertificate, error) {
	cur := k.Current()
	body, err := proto.MarshalOptions{Deterministic: true}.Marshal(&spec.SenderCertificateBody{
		AccountId: acct[:], DeviceId: dev, IdentityKey: identity, ExpiresMs: expires.UnixMilli(), KeyId: cur.ID,
	})
	if err != nil {
		return nil, fmt.Errorf("encode sender certificate: %w", err)
	}
	return &spec.SenderCertificate{Certificate: body, Signature: ed25519.Sign(cur.priv, spec.SenderCertificateMessage(body))}, nil
}
