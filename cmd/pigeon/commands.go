package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
	"github.com/pigeonhole/pigeonhole/relay/client/messenger"
)

// initFlags are the flags of "pigeon init".
type initFlags struct{ addr, fp, name string }

func (f *initFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.addr, "relay", "", "relay `host:port`")
	fs.StringVar(&f.fp, "fingerprint", "", "relay certificate SHA-256 `fingerprint` (pigeonhole serve prints it)")
	fs.StringVar(&f.name, "name", "", "this device's `name`, as \"pigeon devices\" and \"pigeon status\" show it here (default: none)")
}

func (c *cli) init(ctx context.Context, args []string) error {
	fs := c.flagSet("init")
	var f initFlags
	f.register(fs)
	addr, fp := &f.addr, &f.fp
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	if *addr == "" || *fp == "" || fs.NArg() != 0 {
		return usagef(`pigeon init -relay HOST:PORT -fingerprint HEX`, "init needs the relay address and its certificate fingerprint")
	}
	if err := checkRelayFlags(*addr, *fp); err != nil {
		return err
	}
	if err := checkDeviceName(f.name); err != nil {
		return err
	}
	opts := &client.Options{Addr: *addr, Fingerprint: *fp}
	_, statErr := os.Stat(c.dir)
	madeDir := errors.Is(statErr, os.ErrNotExist) // init makes the directory
	m, err := messenger.Register(ctx, c.dir, config(opts), f.name)
	if errors.Is(err, e2e.ErrExists) {
		return failf("use another -dir for another identity", "%s already holds an identity", c.dir)
	}
	if m == nil {
		// The messenger left no device behind, so init can be run
		// again: the directory goes too when init made it.
		if madeDir {
			_ = os.Remove(c.dir) // only if nothing else is in it
		}
		return messengerError("register", opts, err)
	}
	defer m.Close()
	b, _ := json.Marshal(relayInfo{Addr: *addr, Fingerprint: *fp})
	if err := os.WriteFile(filepath.Join(c.dir, relayFile), b, 0o600); err != nil {
		return err
	}
	if err := c.saveLocalName(f.name); err != nil {
		return err
	}
	if e := part(err, messenger.ErrPreKeysPending); e != nil {
		c.kemPreKeysPending(e)
	}
	if e := part(err, messenger.ErrAccessKeyPending); e != nil {
		fmt.Fprintf(c.stderr, "pigeon: contacts will send to you identified, not sealed: %v\n", e)
	}
	fmt.Fprintln(c.stdout, hex.EncodeToString(m.AccountID()))
	return nil
}

// idJSON is what "pigeon id -json" prints. The field names are stable
// and documented in UX.md; nothing in it is secret.
type idJSON struct {
	Account string `json:"account"` // 32 hex digits
	Device  uint32 `json:"device"`
	// IdentityKey is the account's public identity key (hex), what
	// safety numbers are made from.
	IdentityKey string `json:"identity_key"`
	// Relay and RelayFingerprint are the relay this device uses and its
	// pinned certificate fingerprint.
	Relay            string `json:"relay"`
	RelayFingerprint string `json:"relay_fingerprint"`
}

// idFlags declares the flags of "pigeon id".
func idFlags(fs *flag.FlagSet, asJSON *bool) { jsonFlag(fs, asJSON) }

func (c *cli) id(args []string) error {
	fs := c.flagSet("id")
	var asJSON bool
	idFlags(fs, &asJSON)
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	if fs.NArg() != 0 {
		return usagef("pigeon id [-json]", "id takes no arguments")
	}
	d, err := c.device()
	if err != nil {
		return err
	}
	if !asJSON {
		fmt.Fprintln(c.stdout, hex.EncodeToString(d.AccountID()))
		return nil
	}
	opts, err := c.options()
	if err != nil {
		return err
	}
	emit(c.stdout, idJSON{
		Account:          hex.EncodeToString(d.AccountID()),
		Device:           d.DeviceID(),
		IdentityKey:      hex.EncodeToString(d.IdentityKey()),
		Relay:            opts.Addr,
		RelayFingerprint: opts.Fingerprint,
	})
	return nil
}

// dial connects to the relay and explains the usual failures.
func dial(ctx context.Context, opts *client.Options) (*client.Conn, error) {
	conn, err := client.Dial(ctx, opts)
	if err != nil {
		return nil, unreachableError(opts, err)
	}
	return conn, nil
}

// unreachableError words a failed dial for people.
func unreachableError(opts *client.Options, err error) error {
	if errors.Is(err, client.ErrFingerprint) {
		return failf("check the fingerprint \"pigeonhole serve\" printed", "the relay at %s is not the one pinned", opts.Addr)
	}
	var re *client.Error
	if errors.As(err, &re) {
		return relayError("connect", err)
	}
	return failf("is the relay running? check the address", "cannot reach the relay at %s: %v", opts.Addr, err)
}

// relayError words a relay refusal for people.
// retryIn says when to try again, in the units a person reads: "in 6
// minutes", "in 40 seconds", "in 2 hours", "in a moment".
func retryIn(d time.Duration) string {
	switch {
	case d < 2*time.Second:
		return "in a moment"
	case d < 2*time.Minute:
		return fmt.Sprintf("in %d seconds", int((d+time.Second-1)/time.Second))
	case d < 2*time.Hour:
		return fmt.Sprintf("in %d minutes", int((d+time.Minute-1)/time.Minute))
	default:
		return fmt.Sprintf("in %d hours", int((d+time.Hour-1)/time.Hour))
	}
}

func relayError(what string, err error) error {
	var re *client.Error
	if errors.As(err, &re) {
		hint := ""
		switch {
		case re.RetryAfterMillis > 0:
			hint = "try again " + retryIn(time.Duration(re.RetryAfterMillis)*time.Millisecond)
		case re.CodeName() == "UNKNOWN_DEVICE" && slices.Contains([]string{"authenticate", "connect", "receive", "list devices", "set push token", "revoke", "link", "prekey status"}, what):
			hint = "this device is no longer part of its account (it was revoked from another device): move this -dir away and run \"pigeon link\" (or \"pigeon init\") with a new one"
		}
		return failf(hint, "%s: the relay said %s: %s", what, re.CodeName(), re.Message)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// checkRelayFlags refuses a relay address or fingerprint that cannot be
// right, before anything is made or dialled.
func checkRelayFlags(addr, fp string) error {
	host, port, err := net.SplitHostPort(addr)
	if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
		return usagef("give the relay as HOST:PORT, e.g. -relay relay.example.org:4433", "%q is not a relay address", addr)
	}
	if b, err := hex.DecodeString(fp); err != nil || len(b) != 32 {
		return usagef(`the relay prints its fingerprint at start, and "pigeonhole fingerprint" prints it again: 64 hex digits`, "%q is not a certificate fingerprint", fp)
	}
	return nil
}
