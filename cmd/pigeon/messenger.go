package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/client/messenger"
)

// rotatedFile holds when this device last replaced its signed prekey and
// its last-resort KEM prekey on the relay (Unix milliseconds): the
// messenger's key schedule record, where pigeon has always kept it.
const rotatedFile = "keys-rotated"

// cliStore is the messenger's store of the state directory, with the key
// schedule in rotatedFile (UX.md) instead of the messenger's records.
type cliStore struct {
	*messenger.DirStore
	stamp string
}

// Get returns the record under key.
func (s *cliStore) Get(key string) ([]byte, error) {
	if key != messenger.KeyScheduleRecord {
		return s.DirStore.Get(key)
	}
	b, err := os.ReadFile(s.stamp)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// Put replaces the record under key.
func (s *cliStore) Put(key string, value []byte) error {
	if key != messenger.KeyScheduleRecord {
		return s.DirStore.Put(key, value)
	}
	return writeAtomic(s.stamp, append(value, '\n'))
}

// config is the messenger configuration of every pigeon command:
// send-only, so that a running "pigeon listen" keeps receiving, and
// failing at once when the relay cannot be reached.
func config(opts *client.Options) *messenger.Config {
	return &messenger.Config{RelayAddr: opts.Addr, Fingerprint: opts.Fingerprint, SendOnly: true, FailFast: true}
}

// openMessenger opens the registered device's messenger (nothing is
// dialed until a call needs the relay). The caller closes it.
func (c *cli) openMessenger() (*messenger.Messenger, *client.Options, error) {
	if _, err := c.device(); err != nil { // for its explanations
		return nil, nil, err
	}
	opts, err := c.options()
	if err != nil {
		return nil, nil, err
	}
	m, err := c.messengerFor(opts)
	return m, opts, err
}

// messengerFor opens the device's messenger for the relay in opts, with
// the group state in the conversation files (chatGroups) and the
// verification marks in verified.json (verifiedTrust).
func (c *cli) messengerFor(opts *client.Options) (*messenger.Messenger, error) {
	s, err := messenger.OpenDir(c.dir)
	if err != nil {
		return nil, err
	}
	m, err := messenger.OpenStore(&cliStore{DirStore: s, stamp: filepath.Join(c.dir, rotatedFile)}, config(opts), nil)
	if err != nil {
		return nil, err
	}
	m.UseGroupStates(chatGroups{c})
	m.UseTrustStates(verifiedTrust{c})
	return m, nil
}

// messengerError words a failed messenger call for people, as
// unreachableError and relayError do.
func messengerError(what string, opts *client.Options, err error) error {
	var ue *messenger.UnreachableError
	if errors.As(err, &ue) {
		return unreachableError(opts, ue.Err)
	}
	return relayError(what, err)
}

// rotateIfDue replaces the signed prekey and the last-resort KEM prekey
// on the relay once a week (a device that never did starts counting
// now). Failures are reported, not fatal: the old keys keep working, and
// the next recv tries again.
func (c *cli) rotateIfDue(ctx context.Context, m *messenger.Messenger) {
	rotated, err := m.RotateKeysIfDue(ctx)
	if err != nil {
		fmt.Fprintf(c.stderr, "pigeon: could not replace the signed prekeys (the old ones keep working; the next recv tries again): %v\n", err)
		return
	}
	if rotated {
		fmt.Fprintln(c.stderr, "pigeon: replaced this device's signed prekey and last-resort post-quantum prekey (done weekly)")
	}
}

// part is the error among those joined in err (errors.Join) that is
// target, nil if none is.
func part(err, target error) error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if errors.Is(e, target) {
				return e
			}
		}
		return nil
	}
	if errors.Is(err, target) {
		return err
	}
	return nil
}

// kemPreKeysPending says that a new device's first one-time KEM prekeys
// are not on the relay yet (Register, Link.Wait).
func (c *cli) kemPreKeysPending(err error) {
	fmt.Fprintf(c.stderr, "pigeon: could not upload post-quantum prekeys (contacts use the last-resort one meanwhile; \"pigeon recv\" tries again): %v\n", err)
}
