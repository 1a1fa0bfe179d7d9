package jskeys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pigeonhole/pigeonhole/keys"
)

// One-time KEM prekeys are 1,633 bytes each, so up to MaxPreKeys of them
// do not fit one record (NATS's default payload limit is 1 MiB) and
// rewriting them all on every claim would be slow. Each is a record of
// its own (k.<account hex>.<device>.<id>: public key then signature),
// and the device's index record (q.<account hex>.<device>, the ids
// ascending, as JSON) says which are stored. The index is the truth: a
// claim is a compare-and-set of the index that takes the first id out,
// so a KEM prekey is handed out once, also through different relays; the
// claimed record is deleted afterwards, and a record the index does not
// name is never handed out.

func kemIndexKey(a keys.AccountID, id uint32) string {
	return "q." + a.Hex() + "." + strconv.FormatUint(uint64(id), 10)
}

func kemPreKeyKey(a keys.AccountID, dev, id uint32) string {
	return kemPreKeysPrefix(a, dev) + strconv.FormatUint(uint64(id), 10)
}

// kemPreKeysPrefix is the start of every KEM prekey record of a device.
func kemPreKeysPrefix(a keys.AccountID, dev uint32) string {
	return "k." + a.Hex() + "." + strconv.FormatUint(uint64(dev), 10) + "."
}

// loadKemIndex reads a device's KEM prekey ids (ascending) and the index
// record's revision (0: none).
func (s *Store) loadKemIndex(ctx context.Context, a keys.AccountID, id uint32) ([]uint32, uint64, error) {
	v, rev, err := s.get(ctx, kemIndexKey(a, id))
	if err != nil || rev == 0 {
		return nil, rev, err
	}
	var ids []uint32
	if err := json.Unmarshal(v, &ids); err != nil {
		return nil, 0, fmt.Errorf("jskeys: corrupt KEM prekey index: %w", err)
	}
	return ids, rev, nil
}

// updateKemIndex applies change to a device's KEM prekey index until it
// lands without a concurrent writer in between, taking turns with this
// process's other writers of it. change may return errNothingToClaim to
// write nothing.
func (s *Store) updateKemIndex(ctx context.Context, a keys.AccountID, id uint32, change func(ids []uint32) ([]uint32, error)) error {
	key := kemIndexKey(a, id)
	release, err := s.turns.take(ctx, key)
	if err != nil {
		return fmt.Errorf("jskeys: waiting for a KEM prekey claim's turn: %w", err)
	}
	defer release()
	for {
		ids, rev, err := s.loadKemIndex(ctx, a, id)
		if err != nil {
			return err
		}
		next, err := change(ids)
		if err != nil {
			return err
		}
		val, err := json.Marshal(next)
		if err != nil {
			return fmt.Errorf("jskeys: %w", err)
		}
		ok, err := s.put(ctx, key, val, rev)
		if err != nil || ok {
			return err
		}
		if err := conflictPause(ctx); err != nil {
			return err
		}
	}
}

// AddKemPreKeys stores a batch of one-time KEM prekeys for a device, each
// signed by its identity key, and returns how many it now holds. A
// prekey with the id of a stored one replaces it; one bad key refuses
// the batch and stores nothing.
func (s *Store) AddKemPreKeys(ctx context.Context, a keys.AccountID, id uint32, kpks []keys.KemPreKey) (int, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if len(kpks) > s.cfg.MaxBatch {
		return 0, fmt.Errorf("%w: %d KEM prekeys in one batch, at most %d", keys.ErrTooManyPreKeys, len(kpks), s.cfg.MaxBatch)
	}
	d, err := s.Device(ctx, a, id)
	if err != nil {
		return 0, err
	}
	if err := keys.CheckKemPreKeys(d.IdentityKey, kpks, s.cfg.MaxBatch); err != nil {
		return 0, err
	}
	merge := func(stored []uint32) ([]uint32, error) {
		merged := slices.Clone(stored)
		for _, k := range kpks {
			merged = append(merged, k.ID)
		}
		slices.Sort(merged)
		merged = slices.Compact(merged)
		if len(merged) > s.cfg.MaxPreKeys {
			return nil, fmt.Errorf("%w: the device would hold %d KEM prekeys, at most %d", keys.ErrTooManyPreKeys, len(merged), s.cfg.MaxPreKeys)
		}
		return merged, nil
	}
	// Refuse over the cap before writing anything; the index update
	// checks again, against what is stored then.
	stored, _, err := s.loadKemIndex(ctx, a, id)
	if err != nil {
		return 0, err
	}
	if _, err := merge(stored); err != nil {
		return 0, err
	}
	// The records first: the index never names a record not yet written.
	for _, k := range kpks {
		val := append(append(make([]byte, 0, len(k.PublicKey)+len(k.Signature)), k.PublicKey...), k.Signature...)
		if err := s.putAny(ctx, kemPreKeyKey(a, id, k.ID), val); err != nil {
			return 0, fmt.Errorf("jskeys: store KEM prekey: %w", err)
		}
	}
	total := 0
	err = s.updateKemIndex(ctx, a, id, func(stored []uint32) ([]uint32, error) {
		merged, err := merge(stored)
		total = len(merged)
		return merged, err
	})
	return total, err
}

// KemPreKeyCount returns how many one-time KEM prekeys a device holds and
// whether it has a last-resort one.
func (s *Store) KemPreKeyCount(ctx context.Context, a keys.AccountID, id uint32) (int, bool, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	d, err := s.Device(ctx, a, id)
	if err != nil {
		return 0, false, err
	}
	ids, _, err := s.loadKemIndex(ctx, a, id)
	return len(ids), d.KemLastResort != nil, err
}

// RotateKemLastResort sets or replaces a device's last-resort KEM prekey
// after checking it and its signature against the device's identity key.
func (s *Store) RotateKemLastResort(ctx context.Context, a keys.AccountID, id uint32, k keys.KemPreKey) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	return s.updateAccount(ctx, a, func(acc *account) error {
		d, ok := acc.Devices[id]
		if !ok {
			return keys.ErrUnknownDevice
		}
		if err := keys.VerifyKemLastResort(d.IdentityKey, k); err != nil {
			return err
		}
		d.KemLastResort = &k
		return nil
	})
}

// claimKem fills bu's KEM prekey: device id's lowest one-time one if it
// has any and allow says yes (asked at most once, only when it has one),
// else its last-resort one (lastResort, maybe nil).
func (s *Store) claimKem(ctx context.Context, a keys.AccountID, id uint32, bu *keys.Bundle, allow func() bool, lastResort *keys.KemPreKey) error {
	useLastResort := func() {
		if lastResort != nil {
			bu.KemPreKey, bu.KemLastResort = lastResort, true
		}
	}
	var (
		claimed *keys.KemPreKey
		rev     uint64 // of the claimed record
	)
	err := s.updateKemIndex(ctx, a, id, func(ids []uint32) ([]uint32, error) {
		claimed, bu.KemRemaining = nil, len(ids)
		if len(ids) == 0 || !allow() {
			return nil, errNothingToClaim
		}
		v, r, err := s.get(ctx, kemPreKeyKey(a, id, ids[0]))
		if err != nil {
			return nil, err
		}
		if r == 0 || len(v) != keys.KemPublicKeySize+64 {
			// Named but missing or malformed (not written by this
			// code): drop the id, hand out nothing this time.
			bu.KemRemaining = len(ids) - 1
			return ids[1:], nil
		}
		claimed, rev = &keys.KemPreKey{
			ID:        ids[0],
			PublicKey: v[:keys.KemPublicKeySize:keys.KemPublicKeySize],
			Signature: v[keys.KemPublicKeySize:],
		}, r
		bu.KemRemaining = len(ids) - 1
		return ids[1:], nil
	})
	if err != nil && !errors.Is(err, errNothingToClaim) {
		return err
	}
	if claimed == nil {
		useLastResort()
		return nil
	}
	bu.KemPreKey = claimed
	// The index no longer names it; deleting the record only frees
	// space. The revision check keeps a replacement uploaded meanwhile.
	key := kemPreKeyKey(a, id, claimed.ID)
	_ = again(ctx, func() error { return s.kv.Purge(ctx, key, jetstream.LastRevision(rev)) })
	return nil
}

// removeKemPreKeys deletes a device's KEM prekey index and records.
func (s *Store) removeKemPreKeys(ctx context.Context, a keys.AccountID, id uint32) error {
	if err := again(ctx, func() error { return s.kv.Purge(ctx, kemIndexKey(a, id)) }); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("jskeys: remove KEM prekeys: %w", err)
	}
	subject := "$KV." + s.cfg.Bucket + "." + kemPreKeysPrefix(a, id) + ">"
	err := again(ctx, func() error {
		st, err := s.js.Stream(ctx, "KV_"+s.cfg.Bucket)
		if err != nil {
			return err
		}
		return st.Purge(ctx, jetstream.WithPurgeSubject(subject))
	})
	if err != nil {
		return fmt.Errorf("jskeys: remove KEM prekeys: %w", err)
	}
	return nil
}
