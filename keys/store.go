package keys

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Config sets the directory's limits. Zero values mean the defaults.
type Config struct {
	// MaxPreKeys is the most one-time prekeys stored per device
	// (default 1000).
	MaxPreKeys int
	// MaxBatch is the most one-time prekeys in one upload (default 100).
	MaxBatch int
	// MaxDevices is the most devices an account may have (default 6).
	MaxDevices int
	// Now returns the current time (default time.Now).
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.MaxPreKeys <= 0 {
		c.MaxPreKeys = 1000
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 100
	}
	if c.MaxDevices <= 0 {
		c.MaxDevices = 6
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// maxCachedAccounts bounds the device-list cache; past it the cache starts
// over.
const maxCachedAccounts = 1 << 16

// Store is the key directory on a Pebble database. It is safe for
// concurrent use.
type Store struct {
	db  *pebble.DB
	cfg Config

	// locks serialise writers of one account (striped by the account's
	// first byte, which is random).
	locks [64]sync.Mutex

	cacheMu sync.RWMutex
	devices map[AccountID][]uint32 // ascending device ids
}

// Open returns a key directory on db. The caller keeps ownership of db.
func Open(db *pebble.DB, cfg Config) (*Store, error) {
	if db == nil {
		return nil, errors.New("keys: nil database")
	}
	cfg.setDefaults()
	return &Store{db: db, cfg: cfg, devices: make(map[AccountID][]uint32)}, nil
}

func (s *Store) lock(a AccountID) func() {
	m := &s.locks[int(a[0])%len(s.locks)]
	m.Lock()
	return m.Unlock
}

// CreateAccount creates an account with a random id and dev as its first
// device (device 1), with prekeys as its first one-time prekeys. The write
// is durable when it returns.
func (s *Store) CreateAccount(ctx context.Context, dev Device, prekeys []PreKey) (AccountID, error) {
	if err := ctx.Err(); err != nil {
		return AccountID{}, err
	}
	if err := checkDevice(dev); err != nil {
		return AccountID{}, err
	}
	if err := s.checkNewPreKeys(prekeys, 0); err != nil {
		return AccountID{}, err
	}
	var a AccountID
	for {
		if _, err := rand.Read(a[:]); err != nil {
			return AccountID{}, fmt.Errorf("keys: account id: %w", err)
		}
		unlock := s.lock(a)
		exists, err := s.has(accountKey(a))
		if err != nil || exists {
			unlock()
			if err != nil {
				return AccountID{}, err
			}
			continue // a 128-bit collision: astronomically rare, but cheap to handle
		}
		err = s.writeDevice(a, 1, dev, prekeys)
		unlock()
		if err != nil {
			return AccountID{}, err
		}
		return a, nil
	}
}

// AddDevice adds dev to an existing account, with prekeys as its first
// one-time prekeys, and returns its new device id. Ids are never reused.
func (s *Store) AddDevice(ctx context.Context, a AccountID, dev Device, prekeys []PreKey) (uint32, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := checkDevice(dev); err != nil {
		return 0, err
	}
	if err := s.checkNewPreKeys(prekeys, 0); err != nil {
		return 0, err
	}
	defer s.lock(a)()
	next, err := s.nextDeviceID(a)
	if err != nil {
		return 0, err
	}
	ids, err := s.loadDeviceIDs(a)
	if err != nil {
		return 0, err
	}
	if len(ids) >= s.cfg.MaxDevices {
		return 0, fmt.Errorf("%w: the account has %d, at most %d", ErrTooManyDevices, len(ids), s.cfg.MaxDevices)
	}
	if err := s.writeDevice(a, next, dev, prekeys); err != nil {
		return 0, err
	}
	return next, nil
}

// writeDevice stores device id of account a with its prekeys and bumps the
// account's next device id. The caller holds a's lock.
func (s *Store) writeDevice(a AccountID, id uint32, dev Device, prekeys []PreKey) error {
	return s.writeDeviceWith(a, id, dev, prekeys, nil)
}

// writeDeviceWith is writeDevice with more writes (extra, if not nil) in
// the same batch.
func (s *Store) writeDeviceWith(a AccountID, id uint32, dev Device, prekeys []PreKey, extra func(*pebble.Batch)) error {
	dev.ID = id
	dev.Created = s.cfg.Now()
	b := s.db.NewBatch()
	defer b.Close()
	if extra != nil {
		extra(b)
	}
	_ = b.Set(accountKey(a), binary.BigEndian.AppendUint32(nil, id+1), nil)
	_ = b.Set(deviceKey(a, id), encodeDevice(dev), nil)
	for _, p := range prekeys {
		_ = b.Set(preKeyKey(a, id, p.ID), p.PublicKey, nil)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("keys: store device: %w", err)
	}
	s.forget(a)
	return nil
}

// RemoveDevice deletes a device and its prekeys (X25519 and KEM). It cannot authenticate
// again and its id is not reused.
func (s *Store) RemoveDevice(ctx context.Context, a AccountID, id uint32) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	defer s.lock(a)()
	if _, err := s.loadDevice(a, id); err != nil {
		return err
	}
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.Delete(deviceKey(a, id), nil)
	_ = b.Delete(seenKey(a, id), nil)
	for _, p := range [][]byte{preKeyPrefix(a, id), kemPreKeyPrefix(a, id)} {
		_ = b.DeleteRange(p, prefixEnd(p), nil)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("keys: remove device: %w", err)
	}
	s.forget(a)
	return nil
}

// Device returns one device of an account.
func (s *Store) Device(ctx context.Context, a AccountID, id uint32) (Device, error) {
	if err := ctx.Err(); err != nil {
		return Device{}, err
	}
	return s.loadDevice(a, id)
}

// Devices returns every device of an account, by ascending id.
func (s *Store) Devices(ctx context.Context, a AccountID) ([]Device, error) {
	ids, err := s.DeviceIDs(ctx, a)
	if err != nil {
		return nil, err
	}
	out := make([]Device, 0, len(ids))
	for _, id := range ids {
		d, err := s.loadDevice(a, id)
		if errors.Is(err, ErrUnknownDevice) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		d.LastSeen = s.lastSeen(a, id)
		out = append(out, d)
	}
	return out, nil
}

// DeviceIDs returns the ids of an account's devices, ascending. The result
// is cached and must not be modified.
func (s *Store) DeviceIDs(ctx context.Context, a AccountID) ([]uint32, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.cacheMu.RLock()
	ids, ok := s.devices[a]
	s.cacheMu.RUnlock()
	if ok {
		return ids, nil
	}
	// Load and fill under the account's lock, which writers hold while
	// they change devices and forget the entry: an old list can never be
	// put back after a change.
	defer s.lock(a)()
	ids, err := s.loadDeviceIDs(a)
	if err != nil {
		return nil, err
	}
	s.cacheMu.Lock()
	if len(s.devices) >= maxCachedAccounts {
		clear(s.devices)
	}
	s.devices[a] = ids
	s.cacheMu.Unlock()
	return ids, nil
}

// forget drops a's cached device list. Callers hold a's lock.
func (s *Store) forget(a AccountID) {
	s.cacheMu.Lock()
	delete(s.devices, a)
	s.cacheMu.Unlock()
}

func (s *Store) loadDeviceIDs(a AccountID) ([]uint32, error) {
	p := devicePrefix(a)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	var ids []uint32
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		ids = append(ids, binary.BigEndian.Uint32(k[len(p):]))
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("keys: list devices: %w", err)
	}
	if len(ids) == 0 {
		exists, err := s.has(accountKey(a))
		if err != nil {
			return nil, err
		}
		if !exists {
			return nil, ErrUnknownAccount
		}
	}
	slices.Sort(ids)
	return ids, nil
}

func (s *Store) loadDevice(a AccountID, id uint32) (Device, error) {
	v, closer, err := s.db.Get(deviceKey(a, id))
	if errors.Is(err, pebble.ErrNotFound) {
		exists, err := s.has(accountKey(a))
		if err != nil {
			return Device{}, err
		}
		if !exists {
			return Device{}, ErrUnknownAccount
		}
		return Device{}, ErrUnknownDevice
	}
	if err != nil {
		return Device{}, fmt.Errorf("keys: read device: %w", err)
	}
	defer closer.Close()
	return decodeDevice(id, v)
}

func (s *Store) nextDeviceID(a AccountID) (uint32, error) {
	v, closer, err := s.db.Get(accountKey(a))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, ErrUnknownAccount
	}
	if err != nil {
		return 0, fmt.Errorf("keys: read account: %w", err)
	}
	defer closer.Close()
	if len(v) != 4 {
		return 0, fmt.Errorf("keys: corrupt account record (%d bytes)", len(v))
	}
	return binary.BigEndian.Uint32(v), nil
}

func (s *Store) has(k []byte) (bool, error) {
	_, closer, err := s.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("keys: %w", err)
	}
	closer.Close()
	return true, nil
}
