package jskeys

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	mrand "math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pigeonhole/pigeonhole/keys"
)

// Config sets the bucket and the directory's limits. Zero values mean the
// defaults, which are package keys' defaults.
type Config struct {
	// Bucket is the key-value bucket's name (default PIGEONHOLE_KEYS).
	Bucket string
	// Replicas is the bucket's replication factor (default 1; 3 in a
	// cluster).
	Replicas int
	// MaxPreKeys, MaxBatch and MaxDevices are as in keys.Config (defaults
	// 1000, 100 and 6).
	MaxPreKeys, MaxBatch, MaxDevices int
	// Timeout bounds one request when the caller's context has no
	// deadline (default 10 s).
	Timeout time.Duration
	// Now returns the current time (default time.Now).
	Now func() time.Time
	// ClusterKey is the ClusterKeySize-byte secret every relay of the
	// cluster shares (never stored in NATS): every record carries a MAC
	// under a key derived from it, and a record without a valid one is
	// refused with ErrBadRecord. Required: Open returns ErrNoClusterKey
	// without it.
	ClusterKey []byte
	// Rejected, if set, is called with the record's kind ("account",
	// "prekeys", "kem_prekey_index", "kem_prekey" or "seen") whenever a record fails its MAC check (for a
	// metric).
	Rejected func(kind string)
	// Log receives a warning per rejected record, without identifiers
	// (default: discarded).
	Log *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Bucket == "" {
		c.Bucket = "PIGEONHOLE_KEYS"
	}
	c.Replicas = max(c.Replicas, 1)
	if c.MaxPreKeys <= 0 {
		c.MaxPreKeys = 1000
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 100
	}
	if c.MaxDevices <= 0 {
		c.MaxDevices = 6
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
}

// Store is the key directory on a JetStream key-value bucket. It is safe
// for concurrent use, and any number of Stores may share the bucket.
type Store struct {
	kv    jetstream.KeyValue
	js    jetstream.JetStream
	cfg   Config
	mac   *macer
	turns *turns // per-record turns of this process's prekey writers
}

// Open creates or updates the bucket and returns the directory on it. The
// caller keeps ownership of nc.
func Open(ctx context.Context, nc *nats.Conn, cfg Config) (*Store, error) {
	if nc == nil {
		return nil, errors.New("jskeys: nil connection")
	}
	cfg.setDefaults()
	mac, err := newMacer(cfg.ClusterKey, cfg.Bucket)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jskeys: %w", err)
	}
	kv, err := openBucket(ctx, js, jetstream.KeyValueConfig{
		Bucket:   cfg.Bucket,
		History:  1,
		Storage:  jetstream.FileStorage,
		Replicas: cfg.Replicas,
	})
	if err != nil {
		return nil, err
	}
	return &Store{kv: kv, js: js, cfg: cfg, mac: mac, turns: newTurns()}, nil
}

// account is an account's record.
type account struct {
	Next    uint32                  `json:"next"`
	Devices map[uint32]*keys.Device `json:"devices"`
	// Code is the SHA-256 of the account's current link code (the code
	// itself is never stored), valid until CodeExpires (Unix ms).
	Code        []byte `json:"code,omitempty"`
	CodeExpires int64  `json:"code_expires,omitempty"`
}

func (a *account) ids() []uint32 { return slices.Sorted(maps.Keys(a.Devices)) }

func accountKey(a keys.AccountID) string { return "a." + a.Hex() }

func preKeysKey(a keys.AccountID, id uint32) string {
	return "p." + a.Hex() + "." + strconv.FormatUint(uint64(id), 10)
}

func seenKey(a keys.AccountID, id uint32) string {
	return "s." + a.Hex() + "." + strconv.FormatUint(uint64(id), 10)
}

func (s *Store) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.cfg.Timeout)
}

// get reads a record and checks its MAC; rev 0 means there is none. A
// record with a bad MAC is an error wrapping ErrBadRecord.
func (s *Store) get(ctx context.Context, key string) ([]byte, uint64, error) {
	var e jetstream.KeyValueEntry
	err := again(ctx, func() (err error) {
		e, err = s.kv.Get(ctx, key)
		return err
	})
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("jskeys: read %s: %w", key[:1], err)
	}
	val, err := s.mac.open(key, e.Value())
	if err != nil {
		kind := recordKind(key)
		s.cfg.Log.Warn("key directory: refusing a record that fails its cluster-key check (written without the cluster key)", "kind", kind)
		if s.cfg.Rejected != nil {
			s.cfg.Rejected(kind)
		}
		return nil, 0, fmt.Errorf("jskeys: %s record: %w", kind, err)
	}
	return val, e.Revision(), nil
}

// putAny writes a record whatever its revision.
func (s *Store) putAny(ctx context.Context, key string, val []byte) error {
	sealed := s.mac.seal(key, val)
	return again(ctx, func() error { _, err := s.kv.Put(ctx, key, sealed); return err })
}

// put writes a record if it is still at rev (0: if there is none). It
// reports false when another writer came first.
func (s *Store) put(ctx context.Context, key string, val []byte, rev uint64) (bool, error) {
	val = s.mac.seal(key, val)
	err := again(ctx, func() (err error) {
		if rev == 0 {
			_, err = s.kv.Create(ctx, key, val)
		} else {
			_, err = s.kv.Update(ctx, key, val, rev)
		}
		return err
	})
	var apiErr *jetstream.APIError
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyExists),
		errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant): // R>1 says 10164
		return false, nil
	}
	return false, fmt.Errorf("jskeys: write %s: %w", key[:1], err)
}

// loadAccount reads an account's record and its revision.
func (s *Store) loadAccount(ctx context.Context, a keys.AccountID) (*account, uint64, error) {
	v, rev, err := s.get(ctx, accountKey(a))
	if err != nil {
		return nil, 0, err
	}
	if rev == 0 {
		return nil, 0, keys.ErrUnknownAccount
	}
	var acc account
	if err := json.Unmarshal(v, &acc); err != nil {
		return nil, 0, fmt.Errorf("jskeys: corrupt account record: %w", err)
	}
	if acc.Devices == nil {
		acc.Devices = make(map[uint32]*keys.Device)
	}
	return &acc, rev, nil
}

// updateAccount applies change to a's record until it lands without a
// concurrent writer in between.
func (s *Store) updateAccount(ctx context.Context, a keys.AccountID, change func(*account) error) error {
	for {
		acc, rev, err := s.loadAccount(ctx, a)
		if err != nil {
			return err
		}
		if err := change(acc); err != nil {
			return err
		}
		val, err := json.Marshal(acc)
		if err != nil {
			return fmt.Errorf("jskeys: %w", err)
		}
		ok, err := s.put(ctx, accountKey(a), val, rev)
		if err != nil || ok {
			return err
		}
		if err := conflictPause(ctx); err != nil {
			return err
		}
	}
}

// conflictPause waits a little after a lost compare-and-set, so writers
// racing for one record spread out instead of spinning.
func conflictPause(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Duration(1+mrand.IntN(4)) * time.Millisecond):
		return nil
	}
}

// CreateAccount creates an account with a random id and dev as its first
// device (device 1), with prekeys as its first one-time prekeys.
func (s *Store) CreateAccount(ctx context.Context, dev keys.Device, prekeys []keys.PreKey) (keys.AccountID, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if err := keys.CheckDevice(dev); err != nil {
		return keys.AccountID{}, err
	}
	if err := s.checkNew(prekeys); err != nil {
		return keys.AccountID{}, err
	}
	for {
		var a keys.AccountID
		if _, err := rand.Read(a[:]); err != nil {
			return keys.AccountID{}, fmt.Errorf("jskeys: account id: %w", err)
		}
		// The prekeys first: a crash in between leaves unreachable
		// prekeys, never a device without its keys.
		if err := s.writePreKeys(ctx, a, 1, prekeys); err != nil {
			return keys.AccountID{}, err
		}
		dev.ID, dev.Created, dev.LastSeen = 1, s.cfg.Now(), time.Time{}
		val, err := json.Marshal(&account{Next: 2, Devices: map[uint32]*keys.Device{1: &dev}})
		if err != nil {
			return keys.AccountID{}, fmt.Errorf("jskeys: %w", err)
		}
		ok, err := s.put(ctx, accountKey(a), val, 0)
		if err != nil {
			return keys.AccountID{}, err
		}
		if ok {
			return a, nil
		}
		// A 128-bit collision: astronomically rare, but cheap to handle.
	}
}

func (s *Store) checkNew(prekeys []keys.PreKey) error {
	if err := keys.CheckPreKeys(prekeys, s.cfg.MaxBatch); err != nil {
		return err
	}
	if len(prekeys) > s.cfg.MaxPreKeys {
		return fmt.Errorf("%w: the device would hold %d, at most %d", keys.ErrTooManyPreKeys, len(prekeys), s.cfg.MaxPreKeys)
	}
	return nil
}

// Device returns one device of an account.
func (s *Store) Device(ctx context.Context, a keys.AccountID, id uint32) (keys.Device, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	acc, _, err := s.loadAccount(ctx, a)
	if err != nil {
		return keys.Device{}, err
	}
	d, ok := acc.Devices[id]
	if !ok {
		return keys.Device{}, keys.ErrUnknownDevice
	}
	return *d, nil
}

// DeviceIDs returns the ids of an account's devices, ascending.
func (s *Store) DeviceIDs(ctx context.Context, a keys.AccountID) ([]uint32, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	acc, _, err := s.loadAccount(ctx, a)
	if err != nil {
		return nil, err
	}
	return acc.ids(), nil
}

// Devices returns every device of an account, by ascending id, with the
// day each was last seen.
func (s *Store) Devices(ctx context.Context, a keys.AccountID) ([]keys.Device, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	acc, _, err := s.loadAccount(ctx, a)
	if err != nil {
		return nil, err
	}
	out := make([]keys.Device, 0, len(acc.Devices))
	for _, id := range acc.ids() {
		d := *acc.Devices[id]
		if v, rev, err := s.get(ctx, seenKey(a, id)); err == nil && rev != 0 {
			if day, err := strconv.ParseInt(string(v), 10, 64); err == nil {
				d.LastSeen = time.Unix(day*86400, 0).UTC()
			}
		}
		out = append(out, d)
	}
	return out, nil
}

// RemoveDevice deletes a device and its prekeys (X25519 and KEM). It cannot authenticate
// again and its id is not reused.
func (s *Store) RemoveDevice(ctx context.Context, a keys.AccountID, id uint32) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	err := s.updateAccount(ctx, a, func(acc *account) error {
		if _, ok := acc.Devices[id]; !ok {
			return keys.ErrUnknownDevice
		}
		delete(acc.Devices, id)
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range []string{preKeysKey(a, id), seenKey(a, id)} {
		if err := again(ctx, func() error { return s.kv.Purge(ctx, k) }); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("jskeys: remove device: %w", err)
		}
	}
	return s.removeKemPreKeys(ctx, a, id)
}

// RotateSignedPreKey replaces a device's signed prekey after checking its
// signature against the device's identity key.
func (s *Store) RotateSignedPreKey(ctx context.Context, a keys.AccountID, id uint32, spk keys.SignedPreKey) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	return s.updateAccount(ctx, a, func(acc *account) error {
		d, ok := acc.Devices[id]
		if !ok {
			return keys.ErrUnknownDevice
		}
		if err := keys.VerifySignedPreKey(d.IdentityKey, spk); err != nil {
			return err
		}
		d.SignedPreKey = spk
		return nil
	})
}

// Seen records that device id of a opened a session at t. Only the day is
// kept, written once a day.
func (s *Store) Seen(ctx context.Context, a keys.AccountID, id uint32, t time.Time) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if _, err := s.Device(ctx, a, id); err != nil {
		return err
	}
	day := strconv.FormatInt(t.UTC().Unix()/86400, 10)
	if v, rev, err := s.get(ctx, seenKey(a, id)); err == nil && rev != 0 && string(v) == day {
		return nil
	}
	if err := s.putAny(ctx, seenKey(a, id), []byte(day)); err != nil {
		return fmt.Errorf("jskeys: record last seen: %w", err)
	}
	return nil
}

// CreateLinkCode makes a single-use code that lets one new device join
// account a until it expires. An account has at most one code: a new one
// replaces the last. Only the code's SHA-256 is stored.
func (s *Store) CreateLinkCode(ctx context.Context, a keys.AccountID, ttl time.Duration) ([]byte, time.Time, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	code := make([]byte, keys.LinkCodeSize)
	if _, err := rand.Read(code); err != nil {
		return nil, time.Time{}, err
	}
	hash := sha256.Sum256(code)
	expires := s.cfg.Now().Add(ttl)
	err := s.updateAccount(ctx, a, func(acc *account) error {
		acc.Code, acc.CodeExpires = hash[:], expires.UnixMilli()
		return nil
	})
	if err != nil {
		return nil, time.Time{}, err
	}
	return code, expires, nil
}

// LinkDevice adds dev to account a with a code from CreateLinkCode, using
// the code up in the same write, and returns the new device id. Errors are
// package keys' (ErrBadLinkCode, ErrInvalidKey, ErrTooManyDevices).
func (s *Store) LinkDevice(ctx context.Context, a keys.AccountID, code []byte, dev keys.Device, prekeys []keys.PreKey) (uint32, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if len(code) != keys.LinkCodeSize {
		return 0, fmt.Errorf("%w: a link code is %d bytes", keys.ErrBadLinkCode, keys.LinkCodeSize)
	}
	if err := keys.CheckDevice(dev); err != nil {
		return 0, err
	}
	if err := s.checkNew(prekeys); err != nil {
		return 0, err
	}
	hash := sha256.Sum256(code)
	var id uint32
	err := s.updateAccount(ctx, a, func(acc *account) error {
		if len(acc.Code) != len(hash) || subtle.ConstantTimeCompare(acc.Code, hash[:]) != 1 {
			return fmt.Errorf("%w: unknown or already used", keys.ErrBadLinkCode)
		}
		if !s.cfg.Now().Before(time.UnixMilli(acc.CodeExpires)) {
			return fmt.Errorf("%w: expired", keys.ErrBadLinkCode)
		}
		ids := acc.ids()
		if len(ids) == 0 {
			return fmt.Errorf("%w: the account has no device left", keys.ErrBadLinkCode)
		}
		if string(acc.Devices[ids[0]].IdentityKey) != string(dev.IdentityKey) {
			return fmt.Errorf("%w: the identity key is not the account's", keys.ErrInvalidKey)
		}
		if len(ids) >= s.cfg.MaxDevices {
			return fmt.Errorf("%w: the account has %d, at most %d", keys.ErrTooManyDevices, len(ids), s.cfg.MaxDevices)
		}
		id = acc.Next
		d := dev
		d.ID, d.Created, d.LastSeen = id, s.cfg.Now(), time.Time{}
		acc.Devices[id] = &d
		acc.Next++
		acc.Code, acc.CodeExpires = nil, 0
		return nil
	})
	if err != nil {
		return 0, err
	}
	// The prekeys go in once the id is the device's: written before the
	// compare-and-set, a lost race would overwrite the winner's. Until
	// they land, a fetch gets the device without a one-time prekey.
	if err := s.writePreKeys(ctx, a, id, prekeys); err != nil {
		return 0, err
	}
	return id, nil
}

// AddDevice adds dev to an existing account, with prekeys as its first
// one-time prekeys, and returns its new device id. Ids are never reused.
func (s *Store) AddDevice(ctx context.Context, a keys.AccountID, dev keys.Device, prekeys []keys.PreKey) (uint32, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if err := keys.CheckDevice(dev); err != nil {
		return 0, err
	}
	if err := s.checkNew(prekeys); err != nil {
		return 0, err
	}
	var id uint32
	err := s.updateAccount(ctx, a, func(acc *account) error {
		if len(acc.Devices) >= s.cfg.MaxDevices {
			return fmt.Errorf("%w: the account has %d, at most %d", keys.ErrTooManyDevices, len(acc.Devices), s.cfg.MaxDevices)
		}
		id = acc.Next
		d := dev
		d.ID, d.Created, d.LastSeen = id, s.cfg.Now(), time.Time{}
		acc.Devices[id] = &d
		acc.Next++
		return nil
	})
	if err != nil {
		return 0, err
	}
	if err := s.writePreKeys(ctx, a, id, prekeys); err != nil {
		return 0, err
	}
	return id, nil
}
