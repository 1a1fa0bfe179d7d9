package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
)

// initialKEMPreKeys is how many one-time ML-KEM-1024 prekeys a device
// keeps on the relay (about 1.6 KiB each there), so that new contacts
// start PQXDH sessions with a one-time KEM prekey rather than the
// last-resort one.
const initialKEMPreKeys = 100

// uploadKEMPreKeys tops the device's one-time KEM prekeys on the relay up
// to initialKEMPreKeys, on conn (authenticated). A failure is reported,
// not fatal: until the next refill, bundles carry the last-resort KEM
// prekey the device registered with.
func (c *cli) uploadKEMPreKeys(ctx context.Context, conn *client.Conn, d *e2e.Device, remaining int) {
	if remaining >= initialKEMPreKeys {
		return
	}
	ks, err := d.NewKEMPreKeys(initialKEMPreKeys - remaining)
	if err == nil {
		_, err = conn.UploadKemPreKeys(ctx, e2e.UploadAll(ks))
	}
	if err != nil {
		fmt.Fprintf(c.stderr, "pigeon: could not upload post-quantum prekeys (contacts use the last-resort one meanwhile): %v\n", err)
	}
}

// uploadFirstKEMPreKeys uploads a new device's one-time KEM prekeys, on a
// connection of their own: they are too large for the unauthenticated
// connection that registered the device (protocol.md, "Limits"). For a
// new account (init, not link) it also sets up the account's access key
// for sealed sends there (accesskeys.go); a linked device must not, as
// that would replace the key the account's contacts hold.
func (c *cli) uploadFirstKEMPreKeys(ctx context.Context, newAccount bool) {
	d, opts, creds, err := c.registered()
	if err != nil {
		return
	}
	conn, err := dial(ctx, opts)
	if err == nil {
		defer conn.Close()
		_, err = conn.Authenticate(ctx, creds, 0)
	}
	if err != nil {
		fmt.Fprintf(c.stderr, "pigeon: could not upload post-quantum prekeys (contacts use the last-resort one meanwhile; \"pigeon recv\" tries again): %v\n", err)
		return
	}
	c.uploadKEMPreKeys(ctx, conn, d, 0)
	if newAccount {
		if err := c.setUpAccessKey(ctx, conn); err != nil {
			fmt.Fprintf(c.stderr, "pigeon: contacts will send to you identified, not sealed: %v\n", err)
		}
	}
	_ = conn.Finish(ctx)
}

// printSessionKinds says, for verify, which key agreement each session
// with acct's devices was started with: PQXDH (post-quantum) or X3DH.
func (c *cli) printSessionKinds(d *e2e.Device, acct []byte, who string) {
	ids, err := d.SessionDevices(acct)
	if err != nil || len(ids) == 0 {
		return
	}
	parts := make([]string, 0, len(ids))
	for _, id := range ids {
		kind := "X3DH"
		if pq, err := d.PostQuantum(acct, id); err != nil {
			kind = "unreadable"
		} else if pq {
			kind = "PQXDH (post-quantum)"
		}
		parts = append(parts, fmt.Sprintf("device %d %s", id, kind))
	}
	fmt.Fprintf(c.stderr, "pigeon: sessions with %s: %s\n", who, strings.Join(parts, ", "))
}
