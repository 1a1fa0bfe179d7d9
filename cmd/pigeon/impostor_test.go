package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/pigeonhole/pigeonhole/keys"
	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
)

// impostor plays a relay operator who slips a device of its own, with
// another identity key, into an account: with the relay stopped, it
// makes a new device in DIR (using the relay of FROM, a state
// directory), adds it to ACCOUNT in the relay's key directory at DATA,
// and registers it there, so "pigeon -dir DIR" speaks as ACCOUNT with
// the impostor's identity.
//
//	impostor DATA ACCOUNT DIR FROM
func impostor(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 4 {
		ts.Fatalf("usage: impostor DATA ACCOUNT DIR FROM")
	}
	acct, err := hex.DecodeString(args[1])
	if err != nil || len(acct) != 16 {
		ts.Fatalf("bad account %q", args[1])
	}
	dir := ts.MkAbs(args[2])
	dev, reg, err := e2e.Create(dir, 10)
	ts.Check(err)
	db, err := pebble.Open(filepath.Join(ts.MkAbs(args[0]), "db"), &pebble.Options{})
	ts.Check(err)
	defer db.Close()
	store, err := keys.Open(db, keys.Config{})
	ts.Check(err)
	var a keys.AccountID
	copy(a[:], acct)
	pks := make([]keys.PreKey, len(reg.PreKeys))
	for i, p := range reg.PreKeys {
		pks[i] = keys.PreKey{ID: p.ID, PublicKey: p.PublicKey}
	}
	id, err := store.AddDevice(context.Background(), a, keys.Device{
		AuthKey:        ed25519.PrivateKey(reg.AuthKey).Public().(ed25519.PublicKey),
		IdentityKey:    reg.IdentityKey,
		RegistrationID: reg.RegistrationID,
		SignedPreKey:   keys.SignedPreKey{ID: reg.SignedPreKey.ID, PublicKey: reg.SignedPreKey.PublicKey, Signature: reg.SignedPreKey.Signature},
	}, pks)
	ts.Check(err)
	ts.Check(dev.Registered(acct, id))
	b, err := os.ReadFile(filepath.Join(ts.MkAbs(args[3]), relayFile))
	ts.Check(err)
	ts.Check(os.WriteFile(filepath.Join(dir, relayFile), b, 0o600))
}
