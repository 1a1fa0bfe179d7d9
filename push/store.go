package push

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
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
//
// A token also belongs to at most one device: an index record, keyed by
// an HMAC of the token (under a key derived from the seal key, so the
// index names no token) and holding the device sealed, says which device
// a token is on. Registering a token on another device moves it there;
// a device whose token the index gives to another device has no token.
// The index lives in Pebble under "pi/", or in the same Records.
type Store struct {
	recs   Records
	aead   cipher.AEAD
	idxKey []byte     // HMAC key of the token index
	mu     sync.Mutex // orders Set/Delete/DeleteIf within this process
}

// Records is where a Store keeps its sealed records. Get returns rev 0
// when there is no record; Delete with a rev other than 0 deletes only if
// the record is still at that revision, and reports whether it deleted;
// Create stores a record only if there is none, and reports whether it
// stored.
type Records interface {
	Get(ctx context.Context, key []byte) (val []byte, rev uint64, err error)
	Put(ctx context.Context, key, val []byte) error
	Create(ctx context.Context, key, val []byte) (bool, error)
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
	m := hmac.New(sha256.New, sealKey)
	m.Write([]byte("pigeonhole push token index v1"))
	return &Store{recs: recs, aead: aead, idxKey: m.Sum(nil)}, nil
}

// pebbleRecords are Records in a Pebble database, written with fsync. A
// revision is not kept (Get says 1): Store.mu makes DeleteIf and Create
// atomic in the one process that owns the database.
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

func (p pebbleRecords) Create(ctx context.Context, key, val []byte) (bool, error) {
	_, rev, err := p.Get(ctx, key)
	if err != nil || rev != 0 {
		return false, err
	}
	return true, p.db.Set(key, val, pebble.Sync)
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

// indexKey is the key of t's index record: "pi/" and an HMAC of the
// provider and the token's value (not its topic or sandbox flag: the
// value names the app on the device).
func (s *Store) indexKey(t Token) []byte {
	m := hmac.New(sha256.New, s.idxKey)
	m.Write([]byte{byte(t.Provider)})
	m.Write([]byte(t.Value))
	return m.Sum([]byte("pi/"))
}

// sameToken reports whether a and b are the same token to the provider,
// so have the same index record.
func sameToken(a, b Token) bool { return a.Provider == b.Provider && a.Value == b.Value }

const recordVersion = 1

// Set stores t as d's token, replacing any other, and moves t off any
// other device that had it. It is durable when Set returns.
func (s *Store) Set(ctx context.Context, d Device, t Token) error {
	_, _, err := s.set(ctx, d, t)
	return err
}

// set is Set, and reports the device t was moved from, if any.
func (s *Store) set(ctx context.Context, d Device, t Token) (from Device, moved bool, err error) {
	if err := t.Validate(); err != nil {
		return Device{}, false, err
	}
	if err := ctx.Err(); err != nil {
		return Device{}, false, err
	}
	k, ik := storeKey(d), s.indexKey(t)
	rec, err := s.seal(k, sealToken(t))
	if err != nil {
		return Device{}, false, err
	}
	idx, err := s.seal(ik, d.bytes())
	if err != nil {
		return Device{}, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, _, oldErr := s.record(ctx, d)
	if oldErr != nil && !errors.Is(oldErr, ErrNoToken) && !errors.Is(oldErr, errSealed) {
		return Device{}, false, oldErr
	}
	holder, _, err := s.holder(ctx, ik)
	if err != nil && !errors.Is(err, ErrNoToken) && !errors.Is(err, errSealed) {
		return Device{}, false, err
	}
	held := err == nil
	if err := s.recs.Put(ctx, k, rec); err != nil {
		return Device{}, false, fmt.Errorf("push: store token: %w", err)
	}
	// The other device loses the token before the index names d, so that
	// a crash in between leaves no device that would get it back.
	if held && holder != d {
		cur, rev, err := s.record(ctx, holder)
		if err == nil && sameToken(cur, t) {
			if _, err := s.recs.Delete(ctx, storeKey(holder), rev); err != nil {
				return Device{}, false, fmt.Errorf("push: move token: %w", err)
			}
		}
		from, moved = holder, true
	}
	if !held || holder != d {
		if err := s.recs.Put(ctx, ik, idx); err != nil {
			return Device{}, false, fmt.Errorf("push: index token: %w", err)
		}
	}
	if oldErr == nil && !sameToken(old, t) {
		if err := s.unindex(ctx, d, old); err != nil {
			return Device{}, false, err
		}
	}
	return from, moved, nil
}

// Get returns d's token, or ErrNoToken (also when the token was
// registered on another device since).
func (s *Store) Get(ctx context.Context, d Device) (Token, error) {
	if err := ctx.Err(); err != nil {
		return Token{}, err
	}
	t, _, err := s.get(ctx, d)
	return t, err
}

// get reads d's token and its record's revision, and checks that the
// index gives the token to d. A token with no index record (stored before
// the index existed, or by a Set cut short) is indexed to d now, unless
// another device claims it first.
func (s *Store) get(ctx context.Context, d Device) (Token, uint64, error) {
	t, rev, err := s.record(ctx, d)
	if err != nil {
		return Token{}, 0, err
	}
	ik := s.indexKey(t)
	holder, _, err := s.holder(ctx, ik)
	if errors.Is(err, ErrNoToken) {
		holder, err = s.claim(ctx, d, ik)
	}
	if err != nil {
		return Token{}, 0, err
	}
	if holder != d {
		return Token{}, 0, ErrNoToken
	}
	return t, rev, nil
}

// claim indexes the token whose index record is ik to d unless a device
// has it, and returns the device that has it then.
func (s *Store) claim(ctx context.Context, d Device, ik []byte) (Device, error) {
	idx, err := s.seal(ik, d.bytes())
	if err != nil {
		return Device{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.recs.Create(ctx, ik, idx); err != nil {
		return Device{}, fmt.Errorf("push: index token: %w", err)
	}
	holder, _, err := s.holder(ctx, ik)
	return holder, err
}

// record reads d's own record, whatever the index says.
func (s *Store) record(ctx context.Context, d Device) (Token, uint64, error) {
	k := storeKey(d)
	v, rev, err := s.recs.Get(ctx, k)
	if err != nil {
		return Token{}, 0, fmt.Errorf("push: read token: %w", err)
	}
	if rev == 0 {
		return Token{}, 0, ErrNoToken
	}
	plain, err := s.open(k, v)
	if err != nil {
		return Token{}, 0, err
	}
	t, err := openToken(plain)
	return t, rev, err
}

// holder reads the device the index record ik names, or ErrNoToken.
func (s *Store) holder(ctx context.Context, ik []byte) (Device, uint64, error) {
	v, rev, err := s.recs.Get(ctx, ik)
	if err != nil {
		return Device{}, 0, fmt.Errorf("push: read token index: %w", err)
	}
	if rev == 0 {
		return Device{}, 0, ErrNoToken
	}
	plain, err := s.open(ik, v)
	if err != nil || len(plain) != 20 {
		return Device{}, 0, errSealed
	}
	var d Device
	copy(d.Account[:], plain)
	d.ID = binary.BigEndian.Uint32(plain[16:])
	return d, rev, nil
}

// unindex deletes t's index record if it still names d.
func (s *Store) unindex(ctx context.Context, d Device, t Token) error {
	ik := s.indexKey(t)
	holder, rev, err := s.holder(ctx, ik)
	if errors.Is(err, ErrNoToken) || (err == nil && holder != d) {
		return nil
	}
	if errors.Is(err, errSealed) {
		rev = 0 // unreadable: nobody can use it
	} else if err != nil {
		return err
	}
	if _, err := s.recs.Delete(ctx, ik, rev); err != nil {
		return fmt.Errorf("push: delete token index: %w", err)
	}
	return nil
}

// Delete removes d's token, if it has one.
func (s *Store) Delete(ctx context.Context, d Device) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, _, terr := s.record(ctx, d)
	if _, err := s.recs.Delete(ctx, storeKey(d), 0); err != nil {
		return fmt.Errorf("push: delete token: %w", err)
	}
	if terr == nil {
		return s.unindex(ctx, d, t)
	}
	return nil
}

// DeleteIf removes d's token only if it is still t, so a token the
// provider reported dead does not take a newer one with it. It reports
// whether it deleted.
func (s *Store) DeleteIf(ctx context.Context, d Device, t Token) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, rev, err := s.record(ctx, d)
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
	if deleted {
		if err := s.unindex(ctx, d, t); err != nil {
			return true, err
		}
	}
	return deleted, nil
}

func (d Device) bytes() []byte {
	return binary.BigEndian.AppendUint32(append([]byte(nil), d.Account[:]...), d.ID)
}

// sealToken encodes t as provider, flags, topic length, topic, value.
func sealToken(t Token) []byte {
	plain := make([]byte, 0, 4+len(t.Topic)+len(t.Value))
	var flags byte
	if t.Sandbox {
		flags = 1
	}
	plain = append(plain, byte(t.Provider), flags)
	plain = binary.BigEndian.AppendUint16(plain, uint16(len(t.Topic)))
	plain = append(plain, t.Topic...)
	return append(plain, t.Value...)
}

// openToken decodes what sealToken encoded.
func openToken(plain []byte) (Token, error) {
	if len(plain) < 4 {
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

// seal encodes plain as version | nonce | AES-GCM(plain) with the key k
// as associated data.
func (s *Store) seal(k, plain []byte) ([]byte, error) {
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

func (s *Store) open(k, rec []byte) ([]byte, error) {
	ns := s.aead.NonceSize()
	if len(rec) < 1+ns || rec[0] != recordVersion {
		return nil, errSealed
	}
	plain, err := s.aead.Open(nil, rec[1:1+ns], rec[1+ns:], k)
	if err != nil {
		return nil, errSealed
	}
	return plain, nil
}
