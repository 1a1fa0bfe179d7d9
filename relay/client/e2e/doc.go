// Package e2e is Pigeonhole's end-to-end layer on go.mau.fi/libsignal: a
// device's identity and keys kept in a local Storage, X3DH session setup
// from the relay's key bundles, or PQXDH when a bundle has an ML-KEM-1024
// prekey (protocol.md, "PQXDH session start"), Double Ratchet encryption with padding,
// trust on first use of a contact's identity key, and safety numbers.
//
// The relay only ever sees what this package produces: public keys and
// ciphertext. Private keys and session state stay in the device's
// Storage: by default a directory (DirStorage: 0700, files 0600, the
// layout Open and Create use), or any byte store an app gives
// OpenStorage, CreateIn or CreateLinkedIn (a table in its own database).
// Every operation is one exclusive, all-or-nothing Storage transaction
// (on a directory, under an exclusive file lock), so two processes of one
// device (a listener and a sender) never interleave ratchet updates, and
// an operation that fails leaves nothing half done (storage.go says why
// the interface has Transact).
//
// It implements spec/protocol.md, "End-to-end content". Importing it
// replaces libsignal's logger (which prints to stdout) with a silent one.
package e2e
