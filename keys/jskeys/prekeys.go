package jskeys

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/pigeonhole/pigeonhole/keys"
)

// writePreKeys stores a new device's first prekeys, replacing any record
// left at that id.
func (s *Store) writePreKeys(ctx context.Context, a keys.AccountID, id uint32, pks []keys.PreKey) error {
	sorted := slices.SortedFunc(slices.Values(pks), func(x, y keys.PreKey) int { return cmp.Compare(x.ID, y.ID) })
	sorted = slices.CompactFunc(sorted, func(x, y keys.PreKey) bool { return x.ID == y.ID })
	val, err := json.Marshal(sorted)
	if err != nil {
		return fmt.Errorf("jskeys: %w", err)
	}
	if err := s.putAny(ctx, preKeysKey(a, id), val); err != nil {
		return fmt.Errorf("jskeys: store prekeys: %w", err)
	}
	return nil
}

// loadPreKeys reads a device's prekeys (ascending ids) and the record's
// revision (0: none).
func (s *Store) loadPreKeys(ctx context.Context, a keys.AccountID, id uint32) ([]keys.PreKey, uint64, error) {
	v, rev, err := s.get(ctx, preKeysKey(a, id))
	if err != nil || rev == 0 {
		return nil, rev, err
	}
	var pks []keys.PreKey
	if err := json.Unmarshal(v, &pks); err != nil {
		return nil, 0, fmt.Errorf("jskeys: corrupt prekey record: %w", err)
	}
	return pks, rev, nil
}

// updatePreKeys applies change to a device's prekeys until it lands
// without a concurrent writer in between. Writers in this process take
// turns (so they never conflict with each other); a conflict means a
// writer through another relay came first.
func (s *Store) updatePreKeys(ctx context.Context, a keys.AccountID, id uint32, change func([]keys.PreKey) ([]keys.PreKey, error)) error {
	release, err := s.turns.take(ctx, preKeysKey(a, id))
	if err != nil {
		return fmt.Errorf("jskeys: waiting for a prekey claim's turn: %w", err)
	}
	defer release()
	for {
		pks, rev, err := s.loadPreKeys(ctx, a, id)
		if err != nil {
			return err
		}
		next, err := change(pks)
		if err != nil {
			return err
		}
		val, err := json.Marshal(next)
		if err != nil {
			return fmt.Errorf("jskeys: %w", err)
		}
		ok, err := s.put(ctx, preKeysKey(a, id), val, rev)
		if err != nil || ok {
			return err
		}
		if err := conflictPause(ctx); err != nil {
			return err
		}
	}
}

// AddPreKeys stores a batch of one-time prekeys for a device and returns
// how many it now holds. A prekey with the id of a stored one replaces it.
func (s *Store) AddPreKeys(ctx context.Context, a keys.AccountID, id uint32, pks []keys.PreKey) (int, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if err := keys.CheckPreKeys(pks, s.cfg.MaxBatch); err != nil {
		return 0, err
	}
	if _, err := s.Device(ctx, a, id); err != nil {
		return 0, err
	}
	total := 0
	err := s.updatePreKeys(ctx, a, id, func(stored []keys.PreKey) ([]keys.PreKey, error) {
		merged := append(slices.Clone(pks), stored...) // the new ones win
		slices.SortStableFunc(merged, func(x, y keys.PreKey) int { return cmp.Compare(x.ID, y.ID) })
		merged = slices.CompactFunc(merged, func(x, y keys.PreKey) bool { return x.ID == y.ID })
		if len(merged) > s.cfg.MaxPreKeys {
			return nil, fmt.Errorf("%w: the device would hold %d, at most %d", keys.ErrTooManyPreKeys, len(merged), s.cfg.MaxPreKeys)
		}
		total = len(merged)
		return merged, nil
	})
	return total, err
}

// PreKeyCount returns how many one-time prekeys a device holds.
func (s *Store) PreKeyCount(ctx context.Context, a keys.AccountID, id uint32) (int, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if _, err := s.Device(ctx, a, id); err != nil {
		return 0, err
	}
	pks, _, err := s.loadPreKeys(ctx, a, id)
	return len(pks), err
}

// FetchBundles returns one bundle per device of the account, claiming one
// one-time prekey and one one-time KEM prekey from each device that has
// any and that mayClaim allows (nil: every device), else giving its
// last-resort KEM prekey, as keys.Store.FetchBundles does. A claim is a
// compare-and-set of the device's prekey record (of its KEM prekey
// index), so a prekey is handed out once, also to concurrent fetches
// through different relays.
func (s *Store) FetchBundles(ctx context.Context, a keys.AccountID, mayClaim func(device uint32) bool) ([]keys.Bundle, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	acc, _, err := s.loadAccount(ctx, a)
	if err != nil {
		return nil, err
	}
	out := make([]keys.Bundle, 0, len(acc.Devices))
	for _, id := range acc.ids() {
		d := acc.Devices[id]
		bu := keys.Bundle{DeviceID: id, RegistrationID: d.RegistrationID, IdentityKey: d.IdentityKey, SignedPreKey: d.SignedPreKey}
		// The update may run again after a lost compare-and-set; mayClaim
		// is asked once, about a device with a one-time prekey of either
		// kind.
		asked, allowed := false, true
		allow := func() bool {
			if !asked && mayClaim != nil {
				asked, allowed = true, mayClaim(id)
			}
			return allowed
		}
		err := s.updatePreKeys(ctx, a, id, func(pks []keys.PreKey) ([]keys.PreKey, error) {
			bu.PreKey, bu.Remaining = nil, 0
			if len(pks) == 0 {
				return nil, errNothingToClaim
			}
			if !allow() {
				bu.Remaining = len(pks)
				return nil, errNothingToClaim
			}
			first := pks[0]
			bu.PreKey, bu.Remaining = &first, len(pks)-1
			return pks[1:], nil
		})
		if err != nil && err != errNothingToClaim {
			return nil, err
		}
		if err := s.claimKem(ctx, a, id, &bu, allow, d.KemLastResort); err != nil {
			return nil, err
		}
		out = append(out, bu)
	}
	return out, nil
}

// errNothingToClaim stops a claim on a device with no prekeys left.
var errNothingToClaim = fmt.Errorf("jskeys: no prekeys")
