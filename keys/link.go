package keys

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// LinkCodeSize is the size of a link code.
const LinkCodeSize = 16

// CreateLinkCode makes a single-use code that lets one new device join
// account a until it expires (ttl from now). An account has at most one
// code: a new one replaces the last. Only the code's SHA-256 is stored.
func (s *Store) CreateLinkCode(ctx context.Context, a AccountID, ttl time.Duration) ([]byte, time.Time, error) {
	if err := ctx.Err(); err != nil {
		return nil, time.Time{}, err
	}
	code := make([]byte, LinkCodeSize)
	if _, err := rand.Read(code); err != nil {
		return nil, time.Time{}, err
	}
	hash := sha256.Sum256(code)
	expires := s.cfg.Now().Add(ttl)
	defer s.lock(a)()
	if _, err := s.nextDeviceID(a); err != nil {
		return nil, time.Time{}, err
	}
	b := s.db.NewBatch()
	defer b.Close()
	if old, closer, err := s.db.Get(accountCodeKey(a)); err == nil {
		_ = b.Delete(linkCodeKey(old), nil)
		closer.Close()
	} else if !errors.Is(err, pebble.ErrNotFound) {
		return nil, time.Time{}, fmt.Errorf("keys: read link code: %w", err)
	}
	val := append(append([]byte(nil), a[:]...), binary.BigEndian.AppendUint64(nil, uint64(expires.UnixMilli()))...)
	_ = b.Set(linkCodeKey(hash[:]), val, nil)
	_ = b.Set(accountCodeKey(a), hash[:], nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return nil, time.Time{}, fmt.Errorf("keys: store link code: %w", err)
	}
	return code, expires, nil
}

// LinkDevice adds dev to account a with a code from CreateLinkCode, using
// the code up, and returns the new device id. The code must be unexpired
// and made for a (else ErrBadLinkCode); dev's identity key must be the
// account's (else ErrInvalidKey); the account must have room (else
// ErrTooManyDevices, and the code stays usable).
func (s *Store) LinkDevice(ctx context.Context, a AccountID, code []byte, dev Device, prekeys []PreKey) (uint32, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if len(code) != LinkCodeSize {
		return 0, fmt.Errorf("%w: a link code is %d bytes", ErrBadLinkCode, LinkCodeSize)
	}
	if err := checkDevice(dev); err != nil {
		return 0, err
	}
	if err := s.checkNewPreKeys(prekeys, 0); err != nil {
		return 0, err
	}
	hash := sha256.Sum256(code)
	defer s.lock(a)()
	v, closer, err := s.db.Get(linkCodeKey(hash[:]))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, fmt.Errorf("%w: unknown or already used", ErrBadLinkCode)
	}
	if err != nil {
		return 0, fmt.Errorf("keys: read link code: %w", err)
	}
	if len(v) != 24 {
		closer.Close()
		return 0, fmt.Errorf("keys: corrupt link code record (%d bytes)", len(v))
	}
	owner, expiresMs := AccountID(v[:16]), int64(binary.BigEndian.Uint64(v[16:24]))
	closer.Close()
	if owner != a {
		return 0, fmt.Errorf("%w: made for another account", ErrBadLinkCode)
	}
	if !s.cfg.Now().Before(time.UnixMilli(expiresMs)) {
		return 0, fmt.Errorf("%w: expired", ErrBadLinkCode)
	}
	ids, err := s.loadDeviceIDs(a)
	if err != nil {
		return 0, err
	}
	if len(ids) == 0 {
		return 0, fmt.Errorf("%w: the account has no device left", ErrBadLinkCode)
	}
	first, err := s.loadDevice(a, ids[0])
	if err != nil {
		return 0, err
	}
	if !bytes.Equal(first.IdentityKey, dev.IdentityKey) {
		return 0, fmt.Errorf("%w: the identity key is not the account's", ErrInvalidKey)
	}
	if len(ids) >= s.cfg.MaxDevices {
		return 0, fmt.Errorf("%w: the account has %d, at most %d", ErrTooManyDevices, len(ids), s.cfg.MaxDevices)
	}
	id, err := s.nextDeviceID(a)
	if err != nil {
		return 0, err
	}
	// The code is used up in the same batch that adds the device.
	if err := s.writeDeviceWith(a, id, dev, prekeys, func(b *pebble.Batch) {
		_ = b.Delete(linkCodeKey(hash[:]), nil)
		_ = b.Delete(accountCodeKey(a), nil)
	}); err != nil {
		return 0, err
	}
	return id, nil
}

// Seen records that device id of a opened a session at t. Only the day is
// kept, and it is written once a day, without fsync (losing it costs
// nothing).
func (s *Store) Seen(ctx context.Context, a AccountID, id uint32, t time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	day := uint32(t.UTC().Unix() / 86400)
	k := seenKey(a, id)
	defer s.lock(a)()
	// Not for a device removed meanwhile: its record must stay gone.
	if _, err := s.loadDevice(a, id); err != nil {
		return err
	}
	if v, closer, err := s.db.Get(k); err == nil {
		same := len(v) == 4 && binary.BigEndian.Uint32(v) == day
		closer.Close()
		if same {
			return nil
		}
	}
	if err := s.db.Set(k, binary.BigEndian.AppendUint32(nil, day), pebble.NoSync); err != nil {
		return fmt.Errorf("keys: record last seen: %w", err)
	}
	return nil
}

func (s *Store) lastSeen(a AccountID, id uint32) time.Time {
	v, closer, err := s.db.Get(seenKey(a, id))
	if err != nil {
		return time.Time{}
	}
	defer closer.Close()
	if len(v) != 4 {
		return time.Time{}
	}
	return time.Unix(int64(binary.BigEndian.Uint32(v))*86400, 0).UTC()
}
