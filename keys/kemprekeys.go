package keys

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// AddKemPreKeys stores a batch of one-time KEM prekeys for a device, each
// signed by its identity key, and returns how many it now holds. A
// prekey with the id of a stored one replaces it. One bad key refuses the
// batch and stores nothing. The cap is Config.MaxPreKeys, counted apart
// from the X25519 prekeys.
func (s *Store) AddKemPreKeys(ctx context.Context, a AccountID, id uint32, kpks []KemPreKey) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if len(kpks) > s.cfg.MaxBatch {
		return 0, fmt.Errorf("%w: %d KEM prekeys in one batch, at most %d", ErrTooManyPreKeys, len(kpks), s.cfg.MaxBatch)
	}
	d, err := s.loadDevice(a, id)
	if err != nil {
		return 0, err
	}
	// The signatures are checked before the lock: the identity key never
	// changes, and checking 100 of them takes a while.
	if err := CheckKemPreKeys(d.IdentityKey, kpks, s.cfg.MaxBatch); err != nil {
		return 0, err
	}
	defer s.lock(a)()
	if _, err := s.loadDevice(a, id); err != nil {
		return 0, err // removed meanwhile
	}
	stored, err := s.kemPreKeyIDs(a, id)
	if err != nil {
		return 0, err
	}
	added := make(map[uint32]bool, len(kpks))
	for _, k := range kpks {
		if !stored[k.ID] {
			added[k.ID] = true
		}
	}
	total := len(stored) + len(added)
	if total > s.cfg.MaxPreKeys {
		return 0, fmt.Errorf("%w: the device would hold %d KEM prekeys, at most %d", ErrTooManyPreKeys, total, s.cfg.MaxPreKeys)
	}
	b := s.db.NewBatch()
	defer b.Close()
	for _, k := range kpks {
		_ = b.Set(kemPreKeyKey(a, id, k.ID), append(append(make([]byte, 0, kemRecordSize), k.PublicKey...), k.Signature...), nil)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return 0, fmt.Errorf("keys: store KEM prekeys: %w", err)
	}
	return total, nil
}

// KemPreKeyCount returns how many one-time KEM prekeys a device holds and
// whether it has a last-resort one.
func (s *Store) KemPreKeyCount(ctx context.Context, a AccountID, id uint32) (int, bool, error) {
	if err := ctx.Err(); err != nil {
		return 0, false, err
	}
	d, err := s.loadDevice(a, id)
	if err != nil {
		return 0, false, err
	}
	ids, err := s.kemPreKeyIDs(a, id)
	return len(ids), d.KemLastResort != nil, err
}

func (s *Store) kemPreKeyIDs(a AccountID, id uint32) (map[uint32]bool, error) {
	return s.idsUnder(kemPreKeyPrefix(a, id), "KEM prekeys")
}

// RotateKemLastResort sets or replaces a device's last-resort KEM prekey
// after checking it and its signature against the device's identity key.
func (s *Store) RotateKemLastResort(ctx context.Context, a AccountID, id uint32, k KemPreKey) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	defer s.lock(a)()
	d, err := s.loadDevice(a, id)
	if err != nil {
		return err
	}
	if err := VerifyKemLastResort(d.IdentityKey, k); err != nil {
		return err
	}
	d.KemLastResort = &k
	if err := s.db.Set(deviceKey(a, id), encodeDevice(d), pebble.Sync); err != nil {
		return fmt.Errorf("keys: store last-resort KEM prekey: %w", err)
	}
	return nil
}

// claimKem takes the lowest-numbered one-time KEM prekey of device id into
// bu, adding its deletion to b, and counts the rest; when claim is false,
// or the device has none, bu gets the last-resort one (lastResort, maybe
// nil) and the count.
func (s *Store) claimKem(b *pebble.Batch, a AccountID, id uint32, bu *Bundle, claim bool, lastResort *KemPreKey) error {
	p := kemPreKeyPrefix(a, id)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	ok := it.First()
	if ok && claim {
		v := it.Value()
		if len(v) != kemRecordSize {
			it.Close()
			return fmt.Errorf("keys: corrupt KEM prekey record (%d bytes)", len(v))
		}
		bu.KemPreKey = &KemPreKey{
			ID:        binary.BigEndian.Uint32(it.Key()[len(p):]),
			PublicKey: append([]byte(nil), v[:KemPublicKeySize]...),
			Signature: append([]byte(nil), v[KemPublicKeySize:]...),
		}
		_ = b.Delete(append([]byte(nil), it.Key()...), nil)
		ok = it.Next()
	} else if lastResort != nil {
		bu.KemPreKey, bu.KemLastResort = lastResort, true
	}
	for ; ok; ok = it.Next() {
		bu.KemRemaining++
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("keys: read KEM prekeys: %w", err)
	}
	return nil
}

// hasUnder reports whether any key starts with p.
func (s *Store) hasUnder(p []byte) (bool, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return false, fmt.Errorf("keys: %w", err)
	}
	ok := it.First()
	if err := it.Close(); err != nil {
		return false, fmt.Errorf("keys: read prekeys: %w", err)
	}
	return ok, nil
}
