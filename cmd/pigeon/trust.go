package main

import (
	"crypto/sha256"
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
)

// The verification marks, next to the keys in the state directory:
//
//	verified.json   {"accounts": {"<account hex>": {"verified": "<fingerprint>", ...}}}
//
// A fingerprint is the SHA-256 (hex) of a contact's identity public key.
// e2e trusts a contact's first identity key and refuses any other one
// (keeping the last one refused as the offered key); these marks are the
// user's: "I compared the safety number made with this key".
const verifiedFile = "verified.json"

// trustState is what this device knows of the user's checks of one
// account's identity key.
type trustState struct {
	// Verified is the fingerprint of the key whose safety number the user
	// marked as compared; "" when not verified.
	Verified string `json:"verified,omitempty"`
	// Changed is set when a verified key was replaced by an offered one:
	// the mark was cleared because of a change.
	Changed bool `json:"changed,omitempty"`
	// Warned is the fingerprint of the offered key the user was last
	// warned about, so each change is announced once.
	Warned string `json:"warned,omitempty"`
}

type trustFile struct {
	Accounts map[string]*trustState `json:"accounts"`
}

// fingerprint is how a key is kept in verified.json.
func fingerprint(key []byte) string {
	h := sha256.Sum256(key)
	return hex.EncodeToString(h[:])
}

// updateTrust changes one account's trust state under the lock.
func (c *cli) updateTrust(acct []byte, fn func(*trustState)) (trustState, error) {
	unlock, err := c.lockChats()
	if err != nil {
		return trustState{}, err
	}
	defer unlock()
	path := filepath.Join(c.dir, verifiedFile)
	tf := trustFile{}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return trustState{}, err
	default:
		if err := json.Unmarshal(b, &tf); err != nil {
			return trustState{}, failf("move "+path+" away (the verification marks are lost; verify again)", "the verification marks are damaged: %v", err)
		}
	}
	if tf.Accounts == nil {
		tf.Accounts = map[string]*trustState{}
	}
	h := hex.EncodeToString(acct)
	st := tf.Accounts[h]
	if st == nil {
		st = &trustState{}
	}
	before := *st
	if fn != nil {
		fn(st)
	}
	if *st == before {
		return *st, nil
	}
	if *st == (trustState{}) {
		delete(tf.Accounts, h)
	} else {
		tf.Accounts[h] = st
	}
	if b, err = json.MarshalIndent(tf, "", "\t"); err != nil {
		return trustState{}, err
	}
	return *st, writeAtomic(path, append(b, '\n'))
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
	_, offered, err := d.IdentityKeys(acct)
	if err != nil || offered == nil {
		return
	}
	warn := false
	_, err = c.updateTrust(acct, func(st *trustState) {
		if fp := fingerprint(offered); st.Warned != fp {
			st.Warned, warn = fp, true
			if st.Verified != "" {
				st.Verified, st.Changed = "", true
			}
		}
	})
	if err != nil {
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
	n := c.names(d.AccountID())
	who, arg := n.short(acct), n.arg(acct)
	trusted, offered, err := d.IdentityKeys(acct)
	if err != nil {
		return err
	}
	if trusted == nil {
		return failf("send or receive a message with them first", "no identity key known for %s", who)
	}
	if *mark {
		key := trusted
		if offered != nil {
			if err := d.TrustOffered(acct, offered); err != nil {
				return err
			}
			key = offered
		}
		if _, err := c.updateTrust(acct, func(st *trustState) { *st = trustState{Verified: fingerprint(key)} }); err != nil {
			return err
		}
		fmt.Fprintln(c.stdout, d.SafetyNumberWith(acct, key))
		if offered != nil {
			fmt.Fprintf(c.stderr, "pigeon: accepted %s's new identity key; the safety number above is marked verified\n", who)
		} else {
			fmt.Fprintf(c.stderr, "pigeon: the safety number with %s is marked verified\n", who)
		}
		return nil
	}
	st, err := c.updateTrust(acct, nil)
	if err != nil {
		return err
	}
	if offered != nil {
		fmt.Fprintln(c.stdout, d.SafetyNumberWith(acct, offered))
		status := "changed"
		if st.Verified != "" || st.Changed {
			status = "changed since you verified"
		}
		fmt.Fprintf(c.stderr, "pigeon: safety number with %s: %s (their devices show a new identity key; nothing from or to it is accepted yet)\n", who, status)
		fmt.Fprintf(c.stderr, "pigeon: hint: compare the new number above with theirs, in person or on a call; if they match, accept it with: pigeon verify -mark %s\n", arg)
		return nil
	}
	fmt.Fprintln(c.stdout, d.SafetyNumberWith(acct, trusted))
	c.printSessionKinds(d, acct, who)
	if st.Verified == fingerprint(trusted) {
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
