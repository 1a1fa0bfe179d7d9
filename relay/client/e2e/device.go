package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

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
	// ErrExists means Create found a device in the directory already.
	ErrExists = errors.New("e2e: a device already exists in this directory")
	// ErrNoDevice means Open found no device in the directory.
	ErrNoDevice = errors.New("e2e: no device in this directory")
	// ErrNotRegistered means the device has no account yet.
	ErrNotRegistered = errors.New("e2e: the device is not registered")
	// ErrDamaged means the directory's device state cannot be read (a
	// truncated or edited file): the keys in it are lost.
	ErrDamaged = errors.New("e2e: the device state is damaged")
)

const stateFile = "device.json"

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

// Device is one device's end-to-end state in a directory. Its methods may
// be called from several goroutines and processes; each takes the
// directory lock.
type Device struct {
	dir   string
	st    state
	store *fileStore
}

// Create makes a new device in dir: an Ed25519 auth key, a Signal
// identity, a signed prekey and n one-time prekeys. It returns the
// registration to send to the relay; call Registered with the answer.
func Create(dir string, n int) (*Device, *client.Registration, error) {
	ik, err := keyhelper.GenerateIdentityKeyPair()
	if err != nil {
		return nil, nil, fmt.Errorf("e2e: identity: %w", err)
	}
	return create(dir, ik, n)
}

// create makes a new device in dir with the identity key pair ik: an
// Ed25519 auth key, a registration id, a signed prekey and n one-time
// prekeys. Create and CreateLinked share it.
func create(dir string, ik *identity.KeyPair, n int) (*Device, *client.Registration, error) {
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, nil, fmt.Errorf("e2e: %w", err)
	}
	if err := os.Chmod(dir, dirMode); err != nil {
		return nil, nil, fmt.Errorf("e2e: %w", err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	if ok, _ := exists(filepath.Join(dir, stateFile)); ok {
		return nil, nil, ErrExists
	}
	_, auth, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	priv := ik.PrivateKey().Serialize()
	d := &Device{dir: dir, st: state{
		RegistrationID:  keyhelper.GenerateRegistrationID(),
		AuthKey:         auth,
		IdentityPublic:  ik.PublicKey().Serialize(),
		IdentityPrivate: priv[:],
		SignedPreKeyID:  1,
		NextPreKeyID:    1,
	}}
	d.store = &fileStore{dir: dir, ident: ik, regID: d.st.RegistrationID}
	spk, err := keyhelper.GenerateSignedPreKey(ik, d.st.SignedPreKeyID, ser.SignedPreKeyRecord)
	if err != nil {
		return nil, nil, fmt.Errorf("e2e: signed prekey: %w", err)
	}
	if err := d.store.StoreSignedPreKey(context.Background(), spk.ID(), spk); err != nil {
		return nil, nil, fmt.Errorf("e2e: %w", err)
	}
	pks, err := d.newPreKeys(n)
	if err != nil {
		return nil, nil, err
	}
	lastResort, err := d.genKEMPreKeys(1, true)
	if err != nil {
		return nil, nil, err
	}
	kem := lastResort[0].Upload()
	sig := spk.Signature()
	reg := &client.Registration{
		AuthKey:        auth,
		IdentityKey:    d.st.IdentityPublic,
		RegistrationID: d.st.RegistrationID,
		SignedPreKey:   client.SignedPreKey{ID: spk.ID(), PublicKey: spk.KeyPair().PublicKey().Serialize(), Signature: sig[:]},
		PreKeys:        pks,
		KemLastResort:  &kem,
	}
	return d, reg, nil
}

// Open loads the device in dir.
func Open(dir string) (*Device, error) {
	b, err := readFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, fmt.Errorf("e2e: %w", err)
	}
	if b == nil {
		return nil, ErrNoDevice
	}
	d := &Device{dir: dir}
	if err := json.Unmarshal(b, &d.st); err != nil {
		return nil, fmt.Errorf("%w: %s is not valid JSON (%v)", ErrDamaged, stateFile, err)
	}
	if len(d.st.IdentityPrivate) != 32 || len(d.st.AuthKey) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: %s: keys have the wrong size", ErrDamaged, stateFile)
	}
	// Checked before DecodePoint, which panics on an empty key and pads a
	// short one with zeros.
	if len(d.st.IdentityPublic) != 33 || d.st.IdentityPublic[0] != ecc.DjbType {
		return nil, fmt.Errorf("%w: %s: bad identity key", ErrDamaged, stateFile)
	}
	pub, err := ecc.DecodePoint(d.st.IdentityPublic, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: bad identity key", ErrDamaged, stateFile)
	}
	var priv [32]byte
	copy(priv[:], d.st.IdentityPrivate)
	ik := identity.NewKeyPair(identity.NewKey(pub), ecc.NewDjbECPrivateKey(priv))
	d.store = &fileStore{dir: dir, ident: ik, regID: d.st.RegistrationID}
	return d, nil
}

func (d *Device) save() error {
	b, err := json.MarshalIndent(d.st, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFile(filepath.Join(d.dir, stateFile), b); err != nil {
		return fmt.Errorf("e2e: save state: %w", err)
	}
	return nil
}

// Registered records the account and device id the relay assigned.
func (d *Device) Registered(accountID []byte, deviceID uint32) error {
	unlock, err := lockDir(d.dir)
	if err != nil {
		return err
	}
	defer unlock()
	d.st.AccountID, d.st.DeviceID = hex.EncodeToString(accountID), deviceID
	return d.save()
}

// AccountID returns the account id, or nil before registration.
func (d *Device) AccountID() []byte {
	b, _ := hex.DecodeString(d.st.AccountID)
	return b
}

// DeviceID returns the device id, or 0 before registration.
func (d *Device) DeviceID() uint32 { return d.st.DeviceID }

// IdentityKey returns the device's Signal identity public key (33 bytes).
func (d *Device) IdentityKey() []byte { return d.st.IdentityPublic }

// Credentials returns what the client needs to authenticate.
func (d *Device) Credentials() (*client.Credentials, error) {
	acct := d.AccountID()
	if len(acct) != 16 {
		return nil, ErrNotRegistered
	}
	return &client.Credentials{AccountID: acct, DeviceID: d.st.DeviceID, AuthKey: d.st.AuthKey}, nil
}

// NewPreKeys makes and stores n more one-time prekeys, for the relay's
// "prekeys low" notice, and returns their public parts to upload.
func (d *Device) NewPreKeys(n int) ([]client.PreKey, error) {
	unlock, err := lockDir(d.dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	// Another process may have used ids since Open.
	cur, err := Open(d.dir)
	if err != nil {
		return nil, err
	}
	d.st.NextPreKeyID = cur.st.NextPreKeyID
	return d.newPreKeys(n)
}

// newPreKeys generates n prekeys from NextPreKeyID on. The caller holds
// the lock.
func (d *Device) newPreKeys(n int) ([]client.PreKey, error) {
	if n <= 0 {
		return nil, d.save()
	}
	start := int(d.st.NextPreKeyID)
	pks, err := keyhelper.GeneratePreKeys(start, start+n-1, ser.PreKeyRecord)
	if err != nil {
		return nil, fmt.Errorf("e2e: prekeys: %w", err)
	}
	out := make([]client.PreKey, len(pks))
	for i, p := range pks {
		if err := d.store.StorePreKey(context.Background(), p.ID().Value, p); err != nil {
			return nil, fmt.Errorf("e2e: %w", err)
		}
		out[i] = client.PreKey{ID: p.ID().Value, PublicKey: p.KeyPair().PublicKey().Serialize()}
	}
	// Signal prekey ids are 24-bit; wrap around, skipping 0.
	next := start + n
	if next > 0xFFFFFF {
		next = 1
	}
	d.st.NextPreKeyID = uint32(next)
	if err := d.save(); err != nil {
		return nil, err
	}
	return out, nil
}

// Dir returns the directory the device lives in.
func (d *Device) Dir() string { return d.dir }
