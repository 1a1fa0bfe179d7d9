package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
	"github.com/pigeonhole/pigeonhole/relay/client/messenger"
)

// The verification marks, next to the keys in the state directory:
//
//	verified.json   {"accounts": {"<account hex>": {"verified": "<fingerprint>", ...}}}
//
// Each account's object is the messenger's verification record
// (messenger.TrustStates), kept here (UX.md names the file) under the
// conversations' lock, so a send and a running "pigeon listen" change
// it in turn.
const verifiedFile = "verified.json"

type trustFile struct {
	Accounts map[string]json.RawMessage `json:"accounts"`
}

// verifiedTrust keeps the Messenger's verification records in
// verifiedFile.
type verifiedTrust struct{ c *cli }

// UpdateTrust runs f on the account's record under the lock.
func (v verifiedTrust) UpdateTrust(acct []byte, f func([]byte) ([]byte, error)) error {
	unlock, err := v.c.lockChats()
	if err != nil {
		return err
	}
	defer unlock()
	path := filepath.Join(v.c.dir, verifiedFile)
	tf := trustFile{}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	default:
		if err := json.Unmarshal(b, &tf); err != nil {
			return failf("move "+path+" away (the verification marks are lost; verify again)", "the verification marks are damaged: %v", err)
		}
	}
	if tf.Accounts == nil {
		tf.Accounts = map[string]json.RawMessage{}
	}
	h := hex.EncodeToString(acct)
	rec, err := f(tf.Accounts[h])
	if err != nil || rec == nil {
		return err
	}
	if string(rec) == "{}" {
		delete(tf.Accounts, h)
	} else {
		tf.Accounts[h] = rec
	}
	if b, err = json.MarshalIndent(tf, "", "\t"); err != nil {
		return err
	}
	return writeAtomic(path, append(b, '\n'))
}

// identityChangedError is a send refused because the recipient's devices
// show another identity key than the trusted one.
type identityChangedError struct{ account []byte }

func (e *identityChangedError) Error() string {
	return short(e.account) + "'s identity key changed; not sending"
}

// identityChanged is called when a contact's devices showed an identity
// key other than the trusted one (e2e refused it and kept it as the
// offered key). The first time for each offered key it clears a verified
// mark and warns on stderr.
func (c *cli) identityChanged(d *e2e.Device, acct []byte) {
	m, err := c.messenger()
	if err != nil {
		return
	}
	warn, err := m.NoteIdentityChanged(acct)
	if err != nil && !errors.Is(err, messenger.ErrNoIdentityKey) {
		fmt.Fprintf(c.stderr, "pigeon: could not record a changed identity key: %v\n", err)
	}
	if warn {
		n := c.names(d.AccountID())
		fmt.Fprintf(c.stderr, "pigeon: safety number with %s changed; compare again with: pigeon verify %s\n", n.short(acct), n.arg(acct))
	}
}

// identityChangedFailure words a refused send for people.
func (c *cli) identityChangedFailure(acct []byte) error {
	d, err := c.device()
	if err != nil {
		return err
	}
	c.identityChanged(d, acct)
	return failf("", "%s's identity key changed; not sending until you compare the new safety number", c.names(d.AccountID()).short(acct))
}

// verifyFlags declares the flags of "pigeon verify".
func verifyFlags(fs *flag.FlagSet) (mark *bool) {
	return fs.Bool("mark", false, "mark the safety number as compared (and accept a changed identity key)")
}

func (c *cli) verify(args []string) error {
	fs := c.flagSet("verify")
	mark := verifyFlags(fs)
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	if fs.NArg() != 1 {
		return usagef("pigeon verify [-mark] ACCOUNT", "verify needs one account id or contact")
	}
	d, err := c.device()
	if err != nil {
		return err
	}
	acct, err := c.account(fs.Arg(0))
	if err != nil {
		return err
	}
	m, err := c.messenger()
	if err != nil {
		return err
	}
	n := c.names(d.AccountID())
	who, arg := n.short(acct), n.arg(acct)
	trusted, err := m.SafetyNumber(acct)
	if errors.Is(err, messenger.ErrNoIdentityKey) {
		return failf("send or receive a message with them first", "no identity key known for %s", who)
	}
	if err != nil {
		return err
	}
	offered, err := m.OfferedSafetyNumber(acct)
	if err != nil {
		return err
	}
	if *mark {
		sn := trusted
		if offered != nil {
			sn = offered
		}
		if err := m.MarkVerified(acct, sn.Key); err != nil {
			return err
		}
		fmt.Fprintln(c.stdout, sn.Number)
		if offered != nil {
			fmt.Fprintf(c.stderr, "pigeon: accepted %s's new identity key; the safety number above is marked verified\n", who)
		} else {
			fmt.Fprintf(c.stderr, "pigeon: the safety number with %s is marked verified\n", who)
		}
		return nil
	}
	v, err := m.Verification(acct)
	if err != nil {
		return err
	}
	if offered != nil {
		fmt.Fprintln(c.stdout, offered.Number)
		status := "changed"
		if v.State == messenger.ChangedSinceVerified {
			status = "changed since you verified"
		}
		fmt.Fprintf(c.stderr, "pigeon: safety number with %s: %s (their devices show a new identity key; nothing from or to it is accepted yet)\n", who, status)
		fmt.Fprintf(c.stderr, "pigeon: hint: compare the new number above with theirs, in person or on a call; if they match, accept it with: pigeon verify -mark %s\n", arg)
		return nil
	}
	fmt.Fprintln(c.stdout, trusted.Number)
	c.printSessionKinds(d, acct, who)
	if v.State == messenger.Verified {
		fmt.Fprintf(c.stderr, "pigeon: safety number with %s: verified\n", who)
		return nil
	}
	fmt.Fprintf(c.stderr, "pigeon: safety number with %s: not verified\n", who)
	fmt.Fprintf(c.stderr, "pigeon: hint: compare it with theirs in person or on a call (if it differs, someone may be in the middle); when it matches: pigeon verify -mark %s\n", arg)
	return nil
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
