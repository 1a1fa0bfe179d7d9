package main

import (
	"context"
	"path/filepath"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
)

// Sealed sender state (protocol.md, "Sealed sender") is the Messenger's
// (relay/client/messenger, sealedstate.go): this account's access key in
// access-key, a contact's in access-keys/ACCOUNT, both in the state
// directory and 0600; the sender certificate and the pinned server keys
// among its records.
const accessKeyFile = "access-key"

// setUpAccessKey makes this new account's access key and sets its
// verifier on the relay over conn (authenticated); the key is kept only
// once the relay has the verifier, so contacts are never given a key the
// relay would refuse.
func (c *cli) setUpAccessKey(ctx context.Context, conn *client.Conn) error {
	key, err := e2e.NewAccessKey()
	if err != nil {
		return err
	}
	if err := conn.SetUnidentifiedAccess(ctx, key, false); err != nil {
		return relayError("set unidentified access", err)
	}
	return writeAtomic(filepath.Join(c.dir, accessKeyFile), key)
}
