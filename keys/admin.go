package keys

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// AccountInfo is what an operator sees of an account: its id, how many
// devices it has and when, never a key.
type AccountInfo struct {
	ID AccountID
	// Devices is how many devices the account has now.
	Devices int
	// Created is when its oldest remaining device was registered or
	// linked (zero if it has none).
	Created time.Time
	// LastSeen is the start (UTC) of the last day one of its devices
	// opened a session, zero if never.
	LastSeen time.Time
}

// Accounts calls fn with every account, in id order, until fn returns
// false. It reads a consistent snapshot of the directory.
func (s *Store) Accounts(ctx context.Context, fn func(AccountInfo) bool) error {
	snap := s.db.NewSnapshot()
	defer snap.Close()
	p := []byte("k/a/")
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return fmt.Errorf("keys: list accounts: %w", err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		k := it.Key()
		if len(k) != len(p)+len(AccountID{}) {
			continue
		}
		info, err := accountInfo(snap, AccountID(k[len(p):]))
		if err != nil {
			return err
		}
		if !fn(info) {
			return nil
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("keys: list accounts: %w", err)
	}
	return nil
}

// accountInfo reads a's devices and last-seen days from r.
func accountInfo(r pebble.Reader, a AccountID) (AccountInfo, error) {
	info := AccountInfo{ID: a}
	p := devicePrefix(a)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return info, fmt.Errorf("keys: list devices: %w", err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		id := binary.BigEndian.Uint32(it.Key()[len(p):])
		d, err := decodeDevice(id, it.Value())
		if err != nil {
			it.Close()
			return info, err
		}
		info.Devices++
		if info.Created.IsZero() || d.Created.Before(info.Created) {
			info.Created = d.Created
		}
		if v, closer, err := r.Get(seenKey(a, id)); err == nil {
			if len(v) == 4 {
				seen := time.Unix(int64(binary.BigEndian.Uint32(v))*86400, 0).UTC()
				if seen.After(info.LastSeen) {
					info.LastSeen = seen
				}
			}
			closer.Close()
		}
	}
	if err := it.Close(); err != nil {
		return info, fmt.Errorf("keys: list devices: %w", err)
	}
	return info, nil
}

// DeleteAccount removes account a and everything the directory holds of
// it (devices with their last-resort KEM prekeys, one-time X25519 and
// KEM prekeys, last-seen days, an unused link code, the
// unidentified-access verifier) in
// one durable batch, and returns the ids of the devices it had. None of
// them can authenticate again; senders get ErrUnknownAccount. The
// caller deletes the devices' queues and push tokens.
func (s *Store) DeleteAccount(ctx context.Context, a AccountID) ([]uint32, error) {
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
	if hash, closer, err := s.db.Get(accountCodeKey(a)); err == nil {
		_ = b.Delete(linkCodeKey(hash), nil)
		closer.Close()
	} else if !errors.Is(err, pebble.ErrNotFound) {
		return nil, fmt.Errorf("keys: read link code: %w", err)
	}
	_ = b.Delete(accountCodeKey(a), nil)
	_ = b.Delete(accountKey(a), nil)
	for _, tag := range []string{"k/d/", "k/p/", "k/k/", "k/s/", "k/u/"} {
		p := append([]byte(tag), a[:]...)
		_ = b.DeleteRange(p, prefixEnd(p), nil)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return nil, fmt.Errorf("keys: delete account: %w", err)
	}
	s.forget(a)
	return ids, nil
}
