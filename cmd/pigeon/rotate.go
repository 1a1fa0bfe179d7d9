package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
)

// rotatedFile holds when this device last replaced its signed prekey and
// its last-resort KEM prekey on the relay (Unix milliseconds).
const rotatedFile = "keys-rotated"

// rotateEvery is how often recv and listen replace the signed prekey and
// the last-resort KEM prekey, as Signal's clients do with the signed one.
const rotateEvery = 7 * 24 * time.Hour

// rotateIfDue replaces the signed prekey and the last-resort KEM prekey
// on the relay when the last replacement is older than rotateEvery. A
// device that never rotated starts counting now. Failures are reported,
// not fatal: the old keys keep working, and the next recv tries again.
func (c *cli) rotateIfDue(ctx context.Context, cl *client.Client, d *e2e.Device) {
	path := filepath.Join(c.dir, rotatedFile)
	now := time.Now()
	stamp := []byte(strconv.FormatInt(now.UnixMilli(), 10) + "\n")
	b, err := os.ReadFile(path)
	if err != nil {
		_ = writeAtomic(path, stamp)
		return
	}
	ms, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err == nil && now.Sub(time.UnixMilli(ms)) < rotateEvery {
		return
	}
	if err := c.rotateKeys(ctx, cl, d); err != nil {
		fmt.Fprintf(c.stderr, "pigeon: could not replace the signed prekeys (the old ones keep working; the next recv tries again): %v\n", err)
		return
	}
	_ = writeAtomic(path, stamp)
	fmt.Fprintln(c.stderr, "pigeon: replaced this device's signed prekey and last-resort post-quantum prekey (done weekly)")
}

// rotateKeys makes a new signed prekey and a new last-resort KEM prekey
// and gives both to the relay. The previous private parts stay, so
// sessions started from bundles fetched before still open.
func (c *cli) rotateKeys(ctx context.Context, cl *client.Client, d *e2e.Device) error {
	conn, err := cl.Conn(ctx)
	if err != nil {
		return err
	}
	spk, err := d.RotateSignedPreKey()
	if err != nil {
		return err
	}
	if err := conn.RotateSignedPreKey(ctx, spk); err != nil {
		return err
	}
	k, err := d.NewLastResortKEMPreKey()
	if err != nil {
		return err
	}
	return conn.RotateLastResortKemPreKey(ctx, k.Upload())
}
