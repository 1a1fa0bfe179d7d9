// Package e2e is Pigeonhole's end-to-end layer on go.mau.fi/libsignal: a
// device's identity and keys kept in a local directory, X3DH session setup
// from the relay's key bundles, or PQXDH when a bundle has an ML-KEM-1024
// prekey (protocol.md, "PQXDH session start"), Double Ratchet encryption with padding,
// trust on first use of a contact's identity key, and safety numbers.
//
// The relay only ever sees what this package produces: public keys and
// ciphertext. Private keys and session state stay in the device's
// directory (0700, files 0600). Every operation takes an exclusive file
// lock on the directory, so two processes of one device (a listener and a
// sender) never interleave ratchet updates.
//
// It implements spec/protocol.md, "End-to-end content". Importing it
// replaces libsignal's logger (which prints to stdout) with a silent one.
package e2e
