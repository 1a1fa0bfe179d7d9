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

// Store keeps one push token per device, sealed with AES-256-GCM (the
// device's key is the associated data, so a sealed token cannot be moved
// to another device), in Pebble under the prefix "p/" (NewStore) or in
// other Records (NewStoreOn; jstokens keeps them in NATS JetStream for a
// cluster).
type Store struct {
	recs Records
	aead cipher.AEAD
	mu   sync.Mutex // orders Set/Delete/DeleteIf within this process
}

// Records is where a Store keeps its sealed records. Get returns rev 0
// when there is no record; Delete with a rev other than 0 deletes only if
// the record is still at that revision, and reports whether it deleted.
type Records interface {
	Get(ctx context.Context, key []byte) (val []byte, rev uint64, err error)
	Put(ctx context.Context, key, val []byte) error
	Delete(ctx context.Context, key []byte, rev uint64) (bool, error)
}

// NewStore returns a token store on db. sealKey must be SealKeySize random
// bytes, the same on every start (and on every relay of a cluster).
func NewStore(db *pebble.DB, sealKey []byte) (*Store, error) {
	return NewStoreOn(pebbleRecords{db}, sealKey)
}

// PebbleRecords are Records in db, under the prefix "p/", written with
// fsync.
func PebbleRecords(db *pebble.DB) Records { return pebbleRecords{db} }

// NewStoreOn returns a token store on recs, with sealKey as NewStore.
func NewStoreOn(recs Records, sealKey []byte) (*Store, error) {
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
	return &Store{recs: recs, aead: aead}, nil
}

// pebbleRecords are Records in a Pebble database, written with fsync. A
// revision is not kept (Get says 1): Store.mu makes DeleteIf atomic in
// the one process that owns the database.
type pebbleRecords struct{ db *pebble.DB }

func (p pebbleRecords) Get(_ context.Context, key []byte) ([]byte, uint64, error) {
	v, closer, err := p.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	defer closer.Close()
	return append([]byte(nil), v...), 1, nil
}

func (p pebbleRecords) Put(_ context.Context, key, val []byte) error {
	return p.db.Set(key, val, pebble.Sync)
}

func (p pebbleRecords) Delete(_ context.Context, key []byte, _ uint64) (bool, error) {
	return true, p.db.Delete(key, pebble.Sync)
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
	if err := s.recs.Put(ctx, k, rec); err != nil {
		return fmt.Errorf("push: store token: %w", err)
	}
	return nil
}

// Get returns d's token, or ErrNoToken.
func (s *Store) Get(ctx context.Context, d Device) (Token, error) {
	if err := ctx.Err(); err != nil {
		return Token{}, err
	}
	t, _, err := s.get(ctx, d)
	return t, err
}

// get reads d's token and its record's revision.
func (s *Store) get(ctx context.Context, d Device) (Token, uint64, error) {
	k := storeKey(d)
	v, rev, err := s.recs.Get(ctx, k)
	if err != nil {
		return Token{}, 0, fmt.Errorf("push: read token: %w", err)
	}
	if rev == 0 {
		return Token{}, 0, ErrNoToken
	}
	t, err := s.open(k, v)
	return t, rev, err
}

// Delete removes d's token, if it has one.
func (s *Store) Delete(ctx context.Context, d Device) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.recs.Delete(ctx, storeKey(d), 0); err != nil {
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
	cur, rev, err := s.get(ctx, d)
	if errors.Is(err, ErrNoToken) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if cur != t {
		return false, nil
	}
	// Only that revision: a token set meanwhile (through another relay
	// of a cluster) stays.
	deleted, err := s.recs.Delete(ctx, storeKey(d), rev)
	if err != nil {
		return false, fmt.Errorf("push: delete token: %w", err)
	}
	return deleted, nil
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
