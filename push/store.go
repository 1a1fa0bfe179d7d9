package push

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// SealKeySize is the size of the key that seals tokens at rest.
const SealKeySize = 32

// Store keeps one push token per device in Pebble, under the prefix "p/",
// sealed with AES-256-GCM (the device's key is the associated data, so a
// sealed token cannot be moved to another device).
type Store struct {
	db   *pebble.DB
	aead cipher.AEAD
	mu   sync.Mutex // orders Set/Delete/DeleteIf, so DeleteIf compares and deletes atomically
}

// NewStore returns a token store on db. sealKey must be SealKeySize random
// bytes, the same on every start (and on every relay of a cluster).
func NewStore(db *pebble.DB, sealKey []byte) (*Store, error) {
	if len(sealKey) != SealKeySize {
		return nil, fmt.Errorf("push: the token seal key must be %d bytes, not %d", SealKeySize, len(sealKey))
	}
	block, err := aes.NewCipher(sealKey)
	if err != nil {
		return nil, fmt.Errorf("push: seal key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("push: seal key: %w", err)
	}
	return &Store{db: db, aead: aead}, nil
}

func storeKey(d Device) []byte {
	k := make([]byte, 0, 2+16+4)
	k = append(k, "p/"...)
	k = append(k, d.Account[:]...)
	return binary.BigEndian.AppendUint32(k, d.ID)
}

const recordVersion = 1

// Set stores t as d's token, replacing any other. It is durable when Set
// returns.
func (s *Store) Set(ctx context.Context, d Device, t Token) error {
	if err := t.Validate(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	k := storeKey(d)
	rec, err := s.seal(k, t)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.db.Set(k, rec, pebble.Sync); err != nil {
		return fmt.Errorf("push: store token: %w", err)
	}
	return nil
}

// Get returns d's token, or ErrNoToken.
func (s *Store) Get(ctx context.Context, d Device) (Token, error) {
	if err := ctx.Err(); err != nil {
		return Token{}, err
	}
	k := storeKey(d)
	v, closer, err := s.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return Token{}, ErrNoToken
	}
	if err != nil {
		return Token{}, fmt.Errorf("push: read token: %w", err)
	}
	defer closer.Close()
	return s.open(k, v)
}

// Delete removes d's token, if it has one.
func (s *Store) Delete(ctx context.Context, d Device) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.db.Delete(storeKey(d), pebble.Sync); err != nil {
		return fmt.Errorf("push: delete token: %w", err)
	}
	return nil
}

// DeleteIf removes d's token only if it is still t, so a token the
// provider reported dead does not take a newer one with it. It reports
// whether it deleted.
func (s *Store) DeleteIf(ctx context.Context, d Device, t Token) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.Get(ctx, d)
	if errors.Is(err, ErrNoToken) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if cur != t {
		return false, nil
	}
	if err := s.db.Delete(storeKey(d), pebble.Sync); err != nil {
		return false, fmt.Errorf("push: delete token: %w", err)
	}
	return true, nil
}

// seal encodes t as version | nonce | AES-GCM(provider, flags, topic
// length, topic, value) with the key as associated data.
func (s *Store) seal(k []byte, t Token) ([]byte, error) {
	plain := make([]byte, 0, 4+len(t.Topic)+len(t.Value))
	var flags byte
	if t.Sandbox {
		flags = 1
	}
	plain = append(plain, byte(t.Provider), flags)
	plain = binary.BigEndian.AppendUint16(plain, uint16(len(t.Topic)))
	plain = append(plain, t.Topic...)
	plain = append(plain, t.Value...)
	ns := s.aead.NonceSize()
	out := make([]byte, 1+ns, 1+ns+len(plain)+s.aead.Overhead())
	out[0] = recordVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("push: nonce: %w", err)
	}
	return s.aead.Seal(out, out[1:], plain, k), nil
}

// errSealed is returned for a stored record that does not open: the seal
// key changed or the record was damaged.
var errSealed = errors.New("push: stored token does not open with the seal key")

func (s *Store) open(k, rec []byte) (Token, error) {
	ns := s.aead.NonceSize()
	if len(rec) < 1+ns || rec[0] != recordVersion {
		return Token{}, errSealed
	}
	plain, err := s.aead.Open(nil, rec[1:1+ns], rec[1+ns:], k)
	if err != nil || len(plain) < 4 {
		return Token{}, errSealed
	}
	n := int(binary.BigEndian.Uint16(plain[2:4]))
	if len(plain) < 4+n {
		return Token{}, errSealed
	}
	return Token{
		Provider: Provider(plain[0]),
		Sandbox:  plain[1]&1 != 0,
		Topic:    string(plain[4 : 4+n]),
		Value:    string(plain[4+n:]),
	}, nil
}
