package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"

	"go.mau.fi/libsignal/ecc"
	"go.mau.fi/libsignal/keys/identity"
	"go.mau.fi/libsignal/logger"
	"go.mau.fi/libsignal/util/keyhelper"

	"github.com/pigeonhole/pigeonhole/relay/client"
)

// silent replaces libsignal's logger, which prints to stdout.
type silent struct{}

func (silent) Debug(string, string)   {}
func (silent) Info(string, string)    {}
func (silent) Warning(string, string) {}
func (silent) Error(string, string)   {}
func (silent) Configure(string)       {}

func init() { logger.Logger = silent{} }

// Errors returned by Device methods.
var (
	// ErrExists means Create found a device in the directory (or
	// storage) already.
	ErrExists = errors.New("e2e: a device already exists in this directory")
	// ErrNoDevice means Open found no device in the directory (or
	// storage).
	ErrNoDevice = errors.New("e2e: no device in this directory")
	// ErrNotRegistered means the device has no account yet.
	ErrNotRegistered = errors.New("e2e: the device is not registered")
	// ErrDamaged means the device state cannot be read (a truncated or
	// edited file or value): the keys in it are lost.
	ErrDamaged = errors.New("e2e: the device state is damaged")
	// ErrStorage wraps a failure of the device's Storage (no access
	// before ctx ended, a read, write or commit that failed): the
	// operation changed nothing and may be tried again. A message that
	// failed to decrypt this way is still decryptable, so it is not to
	// be acked.
	ErrStorage = errors.New("e2e: the device's storage failed")
)

// state is the device's own secrets and counters, in device.json (0600).
type state struct {
	AccountID       string `json:"account_id,omitempty"` // hex, empty until registered
	DeviceID        uint32 `json:"device_id,omitempty"`
	RegistrationID  uint32 `json:"registration_id"`
	AuthKey         []byte `json:"auth_key"` // Ed25519 private key
	IdentityPublic  []byte `json:"identity_public"`
	IdentityPrivate []byte `json:"identity_private"`
	SignedPreKeyID  uint32 `json:"signed_prekey_id"`
	NextPreKeyID    uint32 `json:"next_prekey_id"`
	NextKEMPreKeyID uint32 `json:"next_kem_prekey_id,omitempty"` // 0 before the first KEM prekey
}

// Device is one device's end-to-end state in a Storage. Its methods may
// be called from several goroutines and processes; each is one
// Storage.Transact. An operation that changes device.json starts from
// what the storage holds, never from this value's copy, so it does not
// undo another process's change.
type Device struct {
	s     Storage
	ident *identity.KeyPair
	regID uint32 // st.RegistrationID, which never changes

	mu sync.Mutex // guards st, the last state this Device read or wrote
	st state
}

// state returns a copy of the device's state.
func (d *Device) state() state {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.st
}

// setState keeps st, committed by a transaction, as the device's state.
func (d *Device) setState(st *state) {
	d.mu.Lock()
	d.st = *st
	d.mu.Unlock()
}

// updateState runs fn in one transaction on the state the storage holds
// and saves what fn made of it; the Device keeps it once committed.
func (d *Device) updateState(fn func(*txStore, *state) error) error {
	var st *state
	err := d.update(func(s *txStore) (err error) {
		if st, err = loadState(s.tx); err != nil {
			return err
		}
		if err := fn(s, st); err != nil {
			return err
		}
		return d.save(s.tx, st)
	})
	if err != nil {
		return err
	}
	d.setState(st)
	return nil
}

// update runs fn in one transaction on the device's storage; fn's writes
// are kept only if it returns nil.
func (d *Device) update(fn func(*txStore) error) error {
	return d.updateCtx(context.Background(), fn)
}

func (d *Device) updateCtx(ctx context.Context, fn func(*txStore) error) error {
	var (
		w     = watchedTxn{}
		fnErr error
		ran   bool
	)
	err := d.s.Transact(ctx, func(tx Txn) error {
		w.Txn, ran = tx, true
		fnErr = fn(&txStore{tx: &w, ident: d.ident, regID: d.regID})
		return fnErr
	})
	switch {
	case err == nil:
		return nil
	case !ran || fnErr == nil:
		// No access (ctx ended waiting for it) or the commit failed:
		// nothing changed, and the same operation may be tried again.
		return fmt.Errorf("%w: %w", ErrStorage, err)
	case w.err != nil:
		// fn failed after a read or write did (libsignal's store
		// interfaces may wrap or replace that error on the way).
		return fmt.Errorf("%w: %w (%w)", ErrStorage, w.err, err)
	}
	return err
}

// watchedTxn is a Txn that remembers its first error, so that updateCtx
// can tell a storage failure from a refusal of the operation.
type watchedTxn struct {
	Txn
	err error
}

func (w *watchedTxn) note(err error) error {
	if err != nil && w.err == nil {
		w.err = err
	}
	return err
}

func (w *watchedTxn) Get(key string) ([]byte, error) {
	v, err := w.Txn.Get(key)
	return v, w.note(err)
}

func (w *watchedTxn) Put(key string, value []byte) error { return w.note(w.Txn.Put(key, value)) }

func (w *watchedTxn) Delete(key string) error { return w.note(w.Txn.Delete(key)) }

func (w *watchedTxn) List(prefix string) ([]string, error) {
	v, err := w.Txn.List(prefix)
	return v, w.note(err)
}

// Create makes a new device in dir (made 0700 if missing): an Ed25519
// auth key, a Signal identity, a signed prekey and n one-time prekeys.
// It returns the registration to send to the relay; call Registered with
// the answer.
func Create(dir string, n int) (*Device, *client.Registration, error) {
	s, err := makeDir(dir)
	if err != nil {
		return nil, nil, err
	}
	return CreateIn(s, n)
}

// CreateIn is Create in the storage s, which must not hold a device
// (ErrExists).
func CreateIn(s Storage, n int) (*Device, *client.Registration, error) {
	ik, err := keyhelper.GenerateIdentityKeyPair()
	if err != nil {
		return nil, nil, fmt.Errorf("e2e: identity: %w", err)
	}
	return create(s, ik, n)
}

// makeDir makes dir 0700 for a new device and returns its storage.
func makeDir(dir string) (*DirStorage, error) {
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, fmt.Errorf("e2e: %w", err)
	}
	if err := os.Chmod(dir, dirMode); err != nil {
		return nil, fmt.Errorf("e2e: %w", err)
	}
	return NewDirStorage(dir), nil
}

// create makes a new device in s with the identity key pair ik: an
// Ed25519 auth key, a registration id, a signed prekey and n one-time
// prekeys, all in one transaction. Create and CreateLinked share it.
func create(s Storage, ik *identity.KeyPair, n int) (*Device, *client.Registration, error) {
	_, auth, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	priv := ik.PrivateKey().Serialize()
	regID := keyhelper.GenerateRegistrationID()
	st := &state{
		RegistrationID:  regID,
		AuthKey:         auth,
		IdentityPublic:  ik.PublicKey().Serialize(),
		IdentityPrivate: priv[:],
		SignedPreKeyID:  1,
		NextPreKeyID:    1,
	}
	d := &Device{s: s, ident: ik, regID: regID, st: *st}
	var reg *client.Registration
	err = d.update(func(ts *txStore) error {
		if b, err := ts.tx.Get(stateKey); err != nil {
			return fmt.Errorf("e2e: %w", err)
		} else if b != nil {
			return ErrExists
		}
		spk, err := keyhelper.GenerateSignedPreKey(ik, st.SignedPreKeyID, ser.SignedPreKeyRecord)
		if err != nil {
			return fmt.Errorf("e2e: signed prekey: %w", err)
		}
		if err := ts.StoreSignedPreKey(context.Background(), spk.ID(), spk); err != nil {
			return fmt.Errorf("e2e: %w", err)
		}
		pks, err := d.newPreKeys(ts, st, n)
		if err != nil {
			return err
		}
		lastResort, err := d.genKEMPreKeys(ts, st, 1, true)
		if err != nil {
			return err
		}
		if err := d.save(ts.tx, st); err != nil {
			return err
		}
		kem := lastResort[0].Upload()
		sig := spk.Signature()
		reg = &client.Registration{
			AuthKey:        auth,
			IdentityKey:    st.IdentityPublic,
			RegistrationID: st.RegistrationID,
			SignedPreKey:   client.SignedPreKey{ID: spk.ID(), PublicKey: spk.KeyPair().PublicKey().Serialize(), Signature: sig[:]},
			PreKeys:        pks,
			KemLastResort:  &kem,
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	d.st = *st
	return d, reg, nil
}

// Open loads the device in dir: ErrNoDevice if there is none (or no
// dir), an error wrapping ErrDamaged if its state cannot be read.
func Open(dir string) (*Device, error) {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoDevice
	}
	return OpenStorage(NewDirStorage(dir))
}

// OpenStorage loads the device in s, as Open does in a directory.
func OpenStorage(s Storage) (*Device, error) {
	var st *state
	err := s.Transact(context.Background(), func(tx Txn) (err error) {
		st, err = loadState(tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	d := &Device{s: s, st: *st}
	pub, err := ecc.DecodePoint(d.st.IdentityPublic, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: bad identity key", ErrDamaged, stateKey)
	}
	var priv [32]byte
	copy(priv[:], d.st.IdentityPrivate)
	d.ident = identity.NewKeyPair(identity.NewKey(pub), ecc.NewDjbECPrivateKey(priv))
	d.regID = d.st.RegistrationID
	return d, nil
}

// loadState reads and checks device.json: ErrNoDevice if it is missing,
// ErrDamaged if it cannot be used.
func loadState(tx Txn) (*state, error) {
	b, err := tx.Get(stateKey)
	if err != nil {
		return nil, fmt.Errorf("e2e: %w", err)
	}
	if b == nil {
		return nil, ErrNoDevice
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%w: %s is not valid JSON (%v)", ErrDamaged, stateKey, err)
	}
	if len(st.IdentityPrivate) != 32 || len(st.AuthKey) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: %s: keys have the wrong size", ErrDamaged, stateKey)
	}
	// Checked before DecodePoint, which panics on an empty key and pads a
	// short one with zeros.
	if len(st.IdentityPublic) != 33 || st.IdentityPublic[0] != ecc.DjbType {
		return nil, fmt.Errorf("%w: %s: bad identity key", ErrDamaged, stateKey)
	}
	return &st, nil
}

// save stores st as the device's state in tx's transaction.
func (d *Device) save(tx Txn, st *state) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := tx.Put(stateKey, b); err != nil {
		return fmt.Errorf("e2e: save state: %w", err)
	}
	return nil
}

// Registered records the account and device id the relay assigned.
func (d *Device) Registered(accountID []byte, deviceID uint32) error {
	return d.updateState(func(_ *txStore, st *state) error {
		st.AccountID, st.DeviceID = hex.EncodeToString(accountID), deviceID
		return nil
	})
}

// AccountID returns the account id, or nil before registration.
func (d *Device) AccountID() []byte {
	b, _ := hex.DecodeString(d.state().AccountID)
	return b
}

// DeviceID returns the device id, or 0 before registration.
func (d *Device) DeviceID() uint32 { return d.state().DeviceID }

// IdentityKey returns the device's Signal identity public key (33 bytes).
func (d *Device) IdentityKey() []byte { return d.state().IdentityPublic }

// Credentials returns what the client needs to authenticate.
func (d *Device) Credentials() (*client.Credentials, error) {
	st := d.state()
	acct, _ := hex.DecodeString(st.AccountID)
	if len(acct) != 16 {
		return nil, ErrNotRegistered
	}
	return &client.Credentials{AccountID: acct, DeviceID: st.DeviceID, AuthKey: st.AuthKey}, nil
}

// NewPreKeys makes and stores n more one-time prekeys, for the relay's
// "prekeys low" notice, and returns their public parts to upload.
func (d *Device) NewPreKeys(n int) ([]client.PreKey, error) {
	var out []client.PreKey
	err := d.updateState(func(s *txStore, st *state) (err error) {
		out, err = d.newPreKeys(s, st, n)
		return err
	})
	return out, err
}

// newPreKeys generates n prekeys from st.NextPreKeyID on, in s's
// transaction, and moves st's counter on; the caller saves st.
func (d *Device) newPreKeys(s *txStore, st *state, n int) ([]client.PreKey, error) {
	if n <= 0 {
		return nil, nil
	}
	start := int(st.NextPreKeyID)
	pks, err := keyhelper.GeneratePreKeys(start, start+n-1, ser.PreKeyRecord)
	if err != nil {
		return nil, fmt.Errorf("e2e: prekeys: %w", err)
	}
	out := make([]client.PreKey, len(pks))
	for i, p := range pks {
		if err := s.StorePreKey(context.Background(), p.ID().Value, p); err != nil {
			return nil, fmt.Errorf("e2e: %w", err)
		}
		out[i] = client.PreKey{ID: p.ID().Value, PublicKey: p.KeyPair().PublicKey().Serialize()}
	}
	// Signal prekey ids are 24-bit; wrap around, skipping 0.
	next := start + n
	if next > 0xFFFFFF {
		next = 1
	}
	st.NextPreKeyID = uint32(next)
	return out, nil
}

// Dir returns the directory the device lives in, or "" when its storage
// is not a DirStorage.
func (d *Device) Dir() string {
	if s, ok := d.s.(*DirStorage); ok {
		return s.dir
	}
	return ""
}

// Storage returns the storage the device lives in.
func (d *Device) Storage() Storage { return d.s }
