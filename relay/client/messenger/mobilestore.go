package messenger

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"

	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
)

// MobileStore is a KV for the binding surface: the app implements it in
// Kotlin, Java or Swift on its own database (SQLite, Room, Core Data),
// and OpenMobileStore, RegisterMobileStore and StartMobileLinkStore keep
// the device's state in it. It holds what a KV holds (the key forms
// e2e.Storage lists, and the messenger's records under "messenger/");
// the values are private keys and ratchet state, so they must stay on
// the device and readable by the app only.
//
// Every operation of the device is one transaction: Begin, the
// MobileTxn's reads and writes, then Commit, or Rollback when the
// operation failed. A transaction must be
//
//   - exclusive from Begin on: while one is open, another Begin (from
//     any thread, or another process sharing the database) waits for it
//     to end, and it sees everything committed before it. SQLite's BEGIN
//     IMMEDIATE gives this; so does a lock taken in Begin and released
//     in Commit and Rollback when only this process uses the database.
//     Two operations interleaved would move one Signal ratchet on twice
//     from the same state, and the messages of one of them would never
//     decrypt.
//   - all or nothing: Commit applies every write of the transaction or,
//     failing, none; Rollback drops them all. An operation writes
//     several values that belong together (a session, an identity key,
//     the deletion of the prekey it used).
//
// Begin, every call on its MobileTxn, and its Commit or Rollback are
// made on one thread (Go pins the calling goroutine to its thread for
// the transaction), as Android's SQLiteDatabase transactions require.
// Calls arrive on a thread of Go's, never the main thread: a Core Data
// store would use a context of its own (performAndWait).
type MobileStore interface {
	// Begin starts a transaction, waiting while another one is open.
	Begin() (MobileTxn, error)
}

// MobileTxn is a MobileStore transaction: its reads see its own writes.
// Keys are '/'-separated segments of lowercase ASCII letters, digits,
// '.', '_' and '-' (never a newline or other whitespace).
type MobileTxn interface {
	// Get returns the value under key. A key with no value returns null
	// (Java, Kotlin) or nil (Swift), or an empty array, never an error:
	// Go reads all three as "no value", and never stores an empty
	// value.
	Get(key string) ([]byte, error)
	// Put stores value under key, replacing what was there.
	Put(key string, value []byte) error
	// Delete removes key; a missing key is not an error.
	Delete(key string) error
	// List returns the keys that start with prefix, in any order, each
	// followed by "\n" (or separated by it): "" when there is none.
	List(prefix string) (string, error)
	// Commit applies the transaction's writes and ends it. When Commit
	// fails it must have applied nothing; Go then calls Rollback, which
	// must release what Begin took (and may find the transaction
	// already over).
	Commit() error
	// Rollback drops the transaction's writes and ends it.
	Rollback() error
}

// mobileKV is the KV on a MobileStore.
type mobileKV struct {
	s MobileStore
}

// mobileKVOf returns s as a KV.
func mobileKVOf(s MobileStore) KV { return &mobileKV{s: s} }

// Transact runs fn in one transaction of the store: Begin, fn, then
// Commit if fn returned nil and Rollback if it returned an error (or
// panicked). ctx is checked before Begin; the wait inside Begin is the
// app's and is not cut short.
func (k *mobileKV) Transact(ctx context.Context, fn func(e2e.Txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	mt, err := k.s.Begin()
	if err != nil {
		return fmt.Errorf("messenger: begin a transaction: %w", err)
	}
	if mt == nil {
		return errors.New("messenger: begin a transaction: the store returned no transaction")
	}
	tx := &mobileTxn{t: mt}
	ended := false
	defer func() {
		tx.done = true
		if !ended {
			_ = mt.Rollback() // fn panicked, or Commit failed
		}
	}()
	if err := fn(tx); err != nil {
		ended = true
		if rerr := mt.Rollback(); rerr != nil {
			return fmt.Errorf("%w (and the rollback failed: %w)", err, rerr)
		}
		return err
	}
	tx.done = true
	if err := mt.Commit(); err != nil {
		return fmt.Errorf("messenger: commit a transaction: %w", err)
	}
	ended = true
	return nil
}

// mobileTxn is an e2e.Txn on a MobileTxn, refused once its Transact
// ended.
type mobileTxn struct {
	t    MobileTxn
	done bool
}

var errMobileTxnDone = errors.New("messenger: store transaction used after it ended")

func (t *mobileTxn) Get(key string) ([]byte, error) {
	if t.done {
		return nil, errMobileTxnDone
	}
	v, err := t.t.Get(key)
	if err != nil {
		return nil, fmt.Errorf("messenger: store get: %w", err)
	}
	if len(v) == 0 {
		return nil, nil
	}
	return v, nil
}

func (t *mobileTxn) Put(key string, value []byte) error {
	if t.done {
		return errMobileTxnDone
	}
	if err := t.t.Put(key, value); err != nil {
		return fmt.Errorf("messenger: store put: %w", err)
	}
	return nil
}

func (t *mobileTxn) Delete(key string) error {
	if t.done {
		return errMobileTxnDone
	}
	if err := t.t.Delete(key); err != nil {
		return fmt.Errorf("messenger: store delete: %w", err)
	}
	return nil
}

// List splits the store's answer at newlines and refuses a key outside
// prefix, so a store that filters wrongly cannot hand e2e another
// record's key.
func (t *mobileTxn) List(prefix string) ([]string, error) {
	if t.done {
		return nil, errMobileTxnDone
	}
	s, err := t.t.List(prefix)
	if err != nil {
		return nil, fmt.Errorf("messenger: store list: %w", err)
	}
	var out []string
	for key := range strings.SplitSeq(s, "\n") {
		if key == "" {
			continue
		}
		if !strings.HasPrefix(key, prefix) {
			return nil, errors.New("messenger: store list: a key outside the prefix")
		}
		out = append(out, key)
	}
	return out, nil
}

// OpenMobileStore is OpenMobile for the registered device whose state
// is in s.
func OpenMobileStore(s MobileStore, cfg *Config) (*Mobile, error) {
	m, err := OpenStorage(mobileKVOf(s), cfg, nil)
	if err != nil {
		return nil, err
	}
	return newMobile(m), nil
}

// RegisterMobileStore is RegisterMobile for a first device whose state
// is kept in s (which must not hold a device).
func RegisterMobileStore(s MobileStore, cfg *Config, name string) (*Mobile, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	m, err := RegisterStorage(ctx, mobileKVOf(s), cfg, name)
	if err != nil && !errors.Is(err, ErrPreKeysPending) {
		return nil, err
	}
	return newMobile(m), nil
}

// StartMobileLinkStore is StartMobileLink for a new device whose state
// will be kept in s (which must not hold a device).
func StartMobileLinkStore(s MobileStore, cfg *Config, name string) (*MobileLink, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	l, err := StartLinkStorage(ctx, mobileKVOf(s), cfg, name)
	if err != nil {
		return nil, err
	}
	return &MobileLink{URI: l.URI, CheckCode: l.CheckCode, l: l}, nil
}
