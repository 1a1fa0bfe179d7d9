package keys

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// checkNewPreKeys validates a batch that would join existing stored keys.
func (s *Store) checkNewPreKeys(pks []PreKey, existing int) error {
	if err := checkPreKeys(pks, s.cfg.MaxBatch); err != nil {
		return err
	}
	if existing+len(pks) > s.cfg.MaxPreKeys {
		return fmt.Errorf("%w: the device would hold %d, at most %d", ErrTooManyPreKeys, existing+len(pks), s.cfg.MaxPreKeys)
	}
	return nil
}

// AddPreKeys stores a batch of one-time prekeys for a device and returns
// how many it now holds. A prekey with the id of a stored one replaces it.
func (s *Store) AddPreKeys(ctx context.Context, a AccountID, id uint32, pks []PreKey) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := checkPreKeys(pks, s.cfg.MaxBatch); err != nil {
		return 0, err
	}
	defer s.lock(a)()
	if _, err := s.loadDevice(a, id); err != nil {
		return 0, err
	}
	stored, err := s.preKeyIDs(a, id)
	if err != nil {
		return 0, err
	}
	added := make(map[uint32]bool, len(pks))
	for _, p := range pks {
		if !stored[p.ID] {
			added[p.ID] = true
		}
	}
	total := len(stored) + len(added)
	if total > s.cfg.MaxPreKeys {
		return 0, fmt.Errorf("%w: the device would hold %d, at most %d", ErrTooManyPreKeys, total, s.cfg.MaxPreKeys)
	}
	b := s.db.NewBatch()
	defer b.Close()
	for _, p := range pks {
		_ = b.Set(preKeyKey(a, id, p.ID), p.PublicKey, nil)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return 0, fmt.Errorf("keys: store prekeys: %w", err)
	}
	return total, nil
}

// PreKeyCount returns how many one-time prekeys a device holds.
func (s *Store) PreKeyCount(ctx context.Context, a AccountID, id uint32) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if _, err := s.loadDevice(a, id); err != nil {
		return 0, err
	}
	ids, err := s.preKeyIDs(a, id)
	return len(ids), err
}

func (s *Store) preKeyIDs(a AccountID, id uint32) (map[uint32]bool, error) {
	return s.idsUnder(preKeyPrefix(a, id), "prekeys")
}

// idsUnder lists the ids of the records under p, whose keys end in a
// big-endian uint32 id (one-time prekeys of either kind).
func (s *Store) idsUnder(p []byte, what string) (map[uint32]bool, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	ids := make(map[uint32]bool)
	for ok := it.First(); ok; ok = it.Next() {
		ids[binary.BigEndian.Uint32(it.Key()[len(p):])] = true
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("keys: list %s: %w", what, err)
	}
	return ids, nil
}

// RotateSignedPreKey replaces a device's signed prekey after checking its
// signature against the device's identity key.
func (s *Store) RotateSignedPreKey(ctx context.Context, a AccountID, id uint32, spk SignedPreKey) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	defer s.lock(a)()
	d, err := s.loadDevice(a, id)
	if err != nil {
		return err
	}
	if err := verifySignedPreKey(d.IdentityKey, spk); err != nil {
		return err
	}
	d.SignedPreKey = spk
	if err := s.db.Set(deviceKey(a, id), encodeDevice(d), pebble.Sync); err != nil {
		return fmt.Errorf("keys: store signed prekey: %w", err)
	}
	return nil
}

// FetchBundles returns one bundle per device of the account, claiming
// from each device that has any and that mayClaim allows (nil: every
// device) one one-time prekey and one one-time KEM prekey. mayClaim is
// asked at most once per device, and only about a device that holds a
// one-time prekey of either kind; a device it refuses gets a bundle
// without a one-time prekey (X3DH then uses the signed prekey alone) and
// with its last-resort KEM prekey, and keeps its one-time prekeys. A
// device with no one-time KEM prekey left gives its last-resort one,
// which is never deleted by a claim. A claimed prekey is deleted durably
// before FetchBundles returns, so it is never handed out twice, also
// under concurrent fetches.
func (s *Store) FetchBundles(ctx context.Context, a AccountID, mayClaim func(device uint32) bool) ([]Bundle, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	defer s.lock(a)()
	ids, err := s.loadDeviceIDs(a)
	if err != nil {
		return nil, err
	}
	b := s.db.NewBatch()
	defer b.Close()
	out := make([]Bundle, 0, len(ids))
	for _, id := range ids {
		d, err := s.loadDevice(a, id)
		if err != nil {
			return nil, err
		}
		bu := Bundle{DeviceID: id, RegistrationID: d.RegistrationID, IdentityKey: d.IdentityKey, SignedPreKey: d.SignedPreKey}
		hasPre, err := s.hasUnder(preKeyPrefix(a, id))
		if err != nil {
			return nil, err
		}
		hasKem, err := s.hasUnder(kemPreKeyPrefix(a, id))
		if err != nil {
			return nil, err
		}
		allowed := (hasPre || hasKem) && (mayClaim == nil || mayClaim(id))
		if err := s.claim(b, a, id, &bu, allowed); err != nil {
			return nil, err
		}
		if err := s.claimKem(b, a, id, &bu, allowed, d.KemLastResort); err != nil {
			return nil, err
		}
		out = append(out, bu)
	}
	if !b.Empty() {
		if err := b.Commit(pebble.Sync); err != nil {
			return nil, fmt.Errorf("keys: claim prekeys: %w", err)
		}
	}
	return out, nil
}

// claim takes the lowest-numbered prekey of a device into bu, adding its
// deletion to b, and counts the rest; when allowed is false it only
// counts.
func (s *Store) claim(b *pebble.Batch, a AccountID, id uint32, bu *Bundle, allowed bool) error {
	p := preKeyPrefix(a, id)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	ok := it.First()
	if ok && allowed {
		bu.PreKey = &PreKey{
			ID:        binary.BigEndian.Uint32(it.Key()[len(p):]),
			PublicKey: append([]byte(nil), it.Value()...),
		}
		_ = b.Delete(append([]byte(nil), it.Key()...), nil)
		ok = it.Next()
	}
	for ; ok; ok = it.Next() {
		bu.Remaining++
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("keys: read prekeys: %w", err)
	}
	return nil
}
