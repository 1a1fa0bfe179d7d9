package messenger

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
)

// KV is a byte store that holds all of a device's local state, for an
// app that keeps it in its own database: e2e's state under the keys
// e2e.Storage lists (device.json, sessions/, prekeys/, signed/,
// kemprekeys/, identities/, offered/, groups/, kept/) and the messenger's
// records under "messenger/". It is e2e.Storage: opaque values, and
// Transact, one exclusive all-or-nothing transaction per operation (the
// doc comment of e2e.Storage says why). e2e.NewDirStorage(dir) is a KV
// with the same files as OpenDir(dir).
type KV = e2e.Storage

// recordsPrefix is where a KVStore keeps the messenger's records, the
// same place as DirStore's "messenger" subdirectory. Without it, a
// group's record (groups/<id>) would sit among e2e's sender keys
// (groups/<id>/...).
const recordsPrefix = "messenger/"

// KVStore is the Store on a KV: e2e's Device on it, and Records under
// "messenger/", each Get, Put, Delete or List one transaction.
type KVStore struct {
	*e2e.Device
	kvRecords
}

var _ Store = (*KVStore)(nil)

// OpenKV opens the registered or unregistered device in kv (ErrNoDevice
// when there is none: RegisterStorage or StartLinkStorage creates one).
func OpenKV(kv KV) (*KVStore, error) {
	d, err := e2e.OpenStorage(kv)
	if errors.Is(err, e2e.ErrNoDevice) {
		return nil, ErrNoDevice
	}
	if err != nil {
		return nil, fmt.Errorf("messenger: %w", err)
	}
	return newKVStore(d, kv), nil
}

func newKVStore(d *e2e.Device, kv KV) *KVStore {
	return &KVStore{Device: d, kvRecords: kvRecords{kv: kv, prefix: recordsPrefix}}
}

// AccessKeys keeps the access keys at the top of the KV, under the keys
// Sealed.AccessKeys names: on e2e.NewDirStorage(dir), the same files as
// DirStore's.
func (s *KVStore) AccessKeys() Records { return &kvRecords{kv: s.kvRecords.kv} }

// undoCreateKV deletes a device created in kv that the relay did not
// take (what undoCreate deletes in a directory), so kv can be used
// again.
func undoCreateKV(kv KV) {
	_ = kv.Transact(context.Background(), func(tx e2e.Txn) error {
		if err := tx.Delete("device.json"); err != nil {
			return err
		}
		for _, prefix := range []string{"prekeys/", "kemprekeys/", "signed/"} {
			keys, err := tx.List(prefix)
			if err != nil {
				return err
			}
			for _, k := range keys {
				if err := tx.Delete(k); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// kvRecords keeps records in a KV under prefix (recordsPrefix for the
// messenger's records, none for the access keys).
type kvRecords struct {
	kv     KV
	prefix string
}

func (r *kvRecords) transact(what, key string, fn func(e2e.Txn) error) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := r.kv.Transact(context.Background(), fn); err != nil {
		return fmt.Errorf("messenger: %s %s: %w", what, key, err)
	}
	return nil
}

// Get returns the record under key, or nil.
func (r *kvRecords) Get(key string) ([]byte, error) {
	var b []byte
	err := r.transact("read", key, func(tx e2e.Txn) (err error) {
		b, err = tx.Get(r.prefix + key)
		return err
	})
	return b, err
}

// Put replaces the record under key.
func (r *kvRecords) Put(key string, value []byte) error {
	return r.transact("save", key, func(tx e2e.Txn) error { return tx.Put(r.prefix+key, value) })
}

// Delete removes the record under key, if any.
func (r *kvRecords) Delete(key string) error {
	return r.transact("delete", key, func(tx e2e.Txn) error { return tx.Delete(r.prefix + key) })
}

// List returns the keys under prefix.
func (r *kvRecords) List(prefix string) ([]string, error) {
	var out []string
	err := r.kv.Transact(context.Background(), func(tx e2e.Txn) error {
		keys, err := tx.List(r.prefix + prefix)
		for _, k := range keys {
			out = append(out, strings.TrimPrefix(k, r.prefix))
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("messenger: list %s: %w", prefix, err)
	}
	return out, nil
}
