package e2e

import "context"

// Storage is where a Device keeps its state: opaque values under string
// keys. The directory storage (DirStorage, what Open and Create use)
// keeps each value in a file; an app can keep them in its own database
// instead (OpenStorage, CreateIn, CreateLinkedIn). Values hold private
// keys, ratchet state and, until the app handled them, the plaintexts
// of queued messages: a Storage must keep them on the device, and
// readable by the app only.
//
// Keys are '/'-separated segments of lowercase letters, digits, '.', '_'
// and '-', none empty or starting with '.':
//
//	device.json                        the device's own keys and counters (JSON)
//	sessions/<account hex>.<device>    a pairwise session (sessionfile.go)
//	prekeys/<id>                       a one-time prekey record
//	signed/<id>                        a signed prekey record
//	kemprekeys/<id>                    a KEM prekey's private part (kem.go)
//	identities/<account hex>           a contact's trusted identity key
//	offered/<account hex>              a contact's refused identity key (identity.go)
//	groups/<group hex>/<account hex>.<device>   a group sender key
//	kept/<envelope hash hex>           a queued message's plaintext until Handled (kept.go)
//
// A Device uses keys of these forms only, so the rest of a Storage's key
// space (relay/client/messenger keeps its records under "messenger/") is
// free for its user.
//
// Every Device operation is one Transact call, because e2e's operations
// are read-modify-write and touch several values at once: decrypting a
// first message stores the session, the sender's identity key, and
// deletes the one-time prekey and KEM prekey it used; making prekeys
// stores them and the counter in device.json; trusting a new identity
// key replaces it and deletes the contact's sessions. A lock alone would
// leave half of such a change behind when a write fails, and a batch
// alone would let two processes (a listener and a sender on one device)
// move one ratchet on from the same state, so that the messages of one
// of them never decrypt. Transact gives both: one at a time, all or
// nothing. A database implements it as a transaction that is exclusive
// from its start (SQLite's BEGIN IMMEDIATE, or a mutex around a
// transaction when only one process uses the database).
type Storage interface {
	// Transact runs fn with exclusive access to the storage: no other
	// Transact on the same storage, in this process or another, runs
	// while fn does, and fn sees every change committed before it. The
	// changes fn makes through the Txn are committed when fn returns nil
	// and discarded when it returns an error, which Transact returns.
	// fn must not call Transact (the call would wait for itself). ctx
	// bounds the wait for access.
	Transact(ctx context.Context, fn func(Txn) error) error
}

// Txn is what a Storage's Transact gives its function: reads see the
// transaction's own writes. A Txn must not be used after fn returns.
type Txn interface {
	// Get returns the value under key, or nil, nil when there is none.
	// A Device never stores an empty value.
	Get(key string) ([]byte, error)
	// Put stores value under key, replacing what was there. The Txn may
	// keep value until commit: the caller does not change it afterwards.
	Put(key string, value []byte) error
	// Delete removes key; a missing key is not an error.
	Delete(key string) error
	// List returns the keys that start with prefix, in no particular
	// order.
	List(prefix string) ([]string, error)
}
