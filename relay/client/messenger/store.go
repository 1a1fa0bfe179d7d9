package messenger

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
)

// The store interfaces are the Go surface (not bound by gomobile: they
// carry uint32 ids and relay/client structs). OpenDir gives the
// file-based Store and OpenKV one on an app's byte store (KV,
// kvstore.go), which is what an app with its own database implements.
// Each interface is one concern, as e2e.Device's methods group them, so
// *e2e.Device implements Identity, Sessions, SenderKeys, PreKeys and
// Trust as it is, on any e2e.Storage.

// Identity is the device's own identity: account, device id, auth key
// and the identity key pair that the account's devices share.
type Identity interface {
	// AccountID is nil and DeviceID 0 before the device is registered.
	AccountID() []byte
	DeviceID() uint32
	// Credentials authenticate the device to the relay.
	Credentials() (*client.Credentials, error)
	// Registered records the account and device id the relay assigned.
	Registered(accountID []byte, deviceID uint32) error
	// SealDeviceName and OpenDeviceName encrypt device names for the
	// account's devices; SealProvisioning seals the identity for a new
	// device being linked.
	SealDeviceName(name string) ([]byte, error)
	OpenDeviceName(sealed []byte) (string, error)
	SealProvisioning(newDevicePublic, linkCode []byte) ([]byte, error)
}

// Sessions are the pairwise Signal sessions, one per contact device; the
// devices of an account that have a session are the device list a send
// names.
type Sessions interface {
	SessionDevices(account []byte) ([]uint32, error)
	StartSessions(ctx context.Context, keys *client.Keys, devices []uint32) error
	ForgetDevices(account []byte, devices []uint32) error
	Encrypt(ctx context.Context, account []byte, devices []uint32, plaintext []byte) ([]client.DeviceMessage, error)
	Decrypt(ctx context.Context, env *client.Envelope) ([]byte, error)
	// Handled forgets the plaintext that Decrypt or DecryptGroup kept of
	// a queued envelope until the app took it (e2e's kept.go).
	Handled(env *client.Envelope) error
}

// SenderKeys are the group sender keys: this device's own per group and
// those other member devices gave it.
type SenderKeys interface {
	SenderKeyDistribution(ctx context.Context, groupID []byte) ([]byte, error)
	ProcessSenderKeyDistribution(ctx context.Context, groupID, account []byte, deviceID uint32, msg []byte) error
	GroupEncrypt(ctx context.Context, groupID, plaintext []byte) ([]byte, error)
	DecryptGroup(ctx context.Context, env *client.Envelope) (groupID, plain []byte, err error)
	RotateSenderKey(ctx context.Context, groupID []byte) error
	ForgetSenderKeys(groupID, account []byte) error
	LeaveGroup(groupID []byte) error
}

// PreKeys makes new one-time prekeys and signed prekeys (the private
// parts stay in the store; the public parts go to the relay).
type PreKeys interface {
	NewPreKeys(n int) ([]client.PreKey, error)
	// NewKEMPreKeys makes one-time ML-KEM-1024 prekeys, for PQXDH.
	NewKEMPreKeys(n int) ([]e2e.KEMPreKey, error)
	// NewLastResortKEMPreKey makes a new last-resort KEM prekey (the
	// previous ones stay until RemoveKEMPreKey).
	NewLastResortKEMPreKey() (e2e.KEMPreKey, error)
	RemoveKEMPreKey(id uint32) error
	RotateSignedPreKey() (client.SignedPreKey, error)
}

// Records keeps the messenger's own small records (group state, the key
// schedule) as opaque values under keys made of lowercase letters,
// digits, '-' and '/'. Get returns nil, nil for a missing key. Values
// never hold message plaintext.
type Records interface {
	Get(key string) ([]byte, error)
	Put(key string, value []byte) error
	Delete(key string) error
	// List returns the keys that start with prefix.
	List(prefix string) ([]string, error)
}

// Store is everything a Messenger keeps locally.
type Store interface {
	Identity
	Sessions
	SenderKeys
	PreKeys
	Trust // trust.go
	Records
	Sealed // sealedstate.go
}

// DirStore is the file-based Store: e2e's device directory (0700, files
// 0600, locked per operation) and the messenger's records in its
// "messenger" subdirectory.
type DirStore struct {
	*e2e.Device
	fileRecords
}

var _ Store = (*DirStore)(nil)

// OpenDir opens the registered or unregistered device in dir (ErrNoDevice
// when there is none: Register or a link creates one).
func OpenDir(dir string) (*DirStore, error) {
	d, err := e2e.Open(dir)
	if errors.Is(err, e2e.ErrNoDevice) {
		return nil, fmt.Errorf("%w in %s", ErrNoDevice, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("messenger: %w", err)
	}
	return &DirStore{Device: d, fileRecords: fileRecords{dir: filepath.Join(dir, "messenger")}}, nil
}

// newDirStore wraps a device just created in dir.
func newDirStore(d *e2e.Device) *DirStore {
	return &DirStore{Device: d, fileRecords: fileRecords{dir: filepath.Join(d.Dir(), "messenger")}}
}

// fileRecords keeps each record in a file of its own, replaced
// atomically.
type fileRecords struct {
	dir string
	mu  sync.Mutex
}

func checkKey(key string) error {
	if key == "" || strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") || strings.Contains(key, "//") {
		return fmt.Errorf("messenger: bad record key %q", key)
	}
	for _, r := range key {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '/') {
			return fmt.Errorf("messenger: bad record key %q", key)
		}
	}
	return nil
}

// Get returns the record under key, or nil.
func (f *fileRecords) Get(key string) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(f.dir, filepath.FromSlash(key)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// Put replaces the record under key: a crash leaves the old value or the
// new one.
func (f *fileRecords) Put(key string, value []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	name := filepath.Join(f.dir, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
		return fmt.Errorf("messenger: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(name), ".tmp-*")
	if err != nil {
		return fmt.Errorf("messenger: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(value)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), name)
	}
	if err != nil {
		return fmt.Errorf("messenger: save %s: %w", key, err)
	}
	return nil
}

// Delete removes the record under key, if any.
func (f *fileRecords) Delete(key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(f.dir, filepath.FromSlash(key))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("messenger: %w", err)
	}
	return nil
}

// List returns the keys under prefix.
func (f *fileRecords) List(prefix string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(f.dir, func(path string, de fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if de.IsDir() || strings.HasPrefix(de.Name(), ".tmp-") {
			return nil
		}
		rel, err := filepath.Rel(f.dir, path)
		if err != nil {
			return err
		}
		if k := filepath.ToSlash(rel); strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("messenger: %w", err)
	}
	return out, nil
}
