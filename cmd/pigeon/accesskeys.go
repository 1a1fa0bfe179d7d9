package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
	"github.com/pigeonhole/pigeonhole/spec"
)

// Sealed sender state (protocol.md, "Sealed sender"), in the state
// directory, every file 0600:
//
//	access-key            this account's unidentified-access key (16 bytes)
//	access-keys/ACCOUNT   a contact's access key, as its messages carried it
//	sender-cert.json      this device's sender certificate, until it expires
//	server-keys.json      the pinned server certificate keys
const (
	accessKeyFile  = "access-key"
	accessKeysDir  = "access-keys"
	senderCertFile = "sender-cert.json"
	serverKeysFile = "server-keys.json"
)

// certMargin is how long before its expiry a cached sender certificate
// is replaced, so that one never expires on its way to a recipient.
const certMargin = time.Hour

// readKey reads a 16-byte access key file: nil when there is none (or
// the file is not a key, which is then ignored as if absent).
func readKey(path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil || len(b) != spec.AccessKeySize {
		return nil
	}
	return b
}

// ownAccessKey is this account's access key, nil if this device has none
// (a linked device before a message from the primary carried it).
func (c *cli) ownAccessKey() []byte { return readKey(filepath.Join(c.dir, accessKeyFile)) }

// contactAccessKey is the access key account acct shared with this
// account, nil if none came yet.
func (c *cli) contactAccessKey(acct []byte) []byte {
	return readKey(filepath.Join(c.dir, accessKeysDir, hex.EncodeToString(acct)))
}

// dropContactAccessKey forgets acct's access key (the relay refused it:
// acct rotated it), so that sends go identified until a new one comes.
func (c *cli) dropContactAccessKey(acct []byte) {
	_ = os.Remove(filepath.Join(c.dir, accessKeysDir, hex.EncodeToString(acct)))
}

// learnAccessKey keeps the access key a message from account from
// carried: a contact's for sealed sends to it, or, on a device of this
// account that has none (a linked one), the account's own. It never
// replaces this account's own key.
func (c *cli) learnAccessKey(d *e2e.Device, from, key []byte) {
	if len(key) != spec.AccessKeySize || len(from) != spec.AccountIDSize {
		return
	}
	path := filepath.Join(c.dir, accessKeysDir, hex.EncodeToString(from))
	if string(from) == string(d.AccountID()) {
		path = filepath.Join(c.dir, accessKeyFile)
		if c.ownAccessKey() != nil {
			return
		}
	} else if string(c.contactAccessKey(from)) == string(key) {
		return
	}
	if err := writeAtomic(path, key); err != nil {
		fmt.Fprintf(c.stderr, "pigeon: could not keep an access key (sends to %s stay identified): %v\n", short(from), err)
	}
}

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

// withAccessKey returns plain (an encoded spec.Content) carrying this
// account's access key, when this device has it: every message does, so
// contacts learn it, and learn a new one, without a message of its own.
func (c *cli) withAccessKey(plain []byte) []byte {
	key := c.ownAccessKey()
	if key == nil {
		return plain
	}
	var content spec.Content
	if err := proto.Unmarshal(plain, &content); err != nil {
		return plain
	}
	content.AccessKey = key
	return mustContent(&content)
}

// certFile is sender-cert.json.
type certFile struct {
	Raw       []byte `json:"raw"`
	ExpiresMs int64  `json:"expires_ms"`
}

// senderCertificate returns this device's sender certificate: the cached
// one while it is good for more than certMargin, else a new one from the
// relay over conn (authenticated), whose server keys it pins.
func (c *cli) senderCertificate(ctx context.Context, conn *client.Conn) ([]byte, error) {
	path := filepath.Join(c.dir, senderCertFile)
	var cf certFile
	if b, err := os.ReadFile(path); err == nil && json.Unmarshal(b, &cf) == nil &&
		time.Until(time.UnixMilli(cf.ExpiresMs)) > certMargin && len(cf.Raw) > 0 {
		return cf.Raw, nil
	}
	cert, keys, err := conn.SenderCertificate(ctx)
	if err != nil {
		return nil, err // a refusal stays a *client.Error: deliver reads its code
	}
	if err := c.pinServerKeys(keys); err != nil {
		return nil, err
	}
	b, _ := json.Marshal(certFile{Raw: cert.Raw, ExpiresMs: cert.Expires.UnixMilli()})
	if err := writeAtomic(path, b); err != nil {
		return nil, err
	}
	return cert.Raw, nil
}

// serverKeys returns the pinned server certificate keys.
func (c *cli) serverKeys() e2e.ServerKeys {
	keys := e2e.ServerKeys{}
	b, err := os.ReadFile(filepath.Join(c.dir, serverKeysFile))
	if err != nil {
		return keys
	}
	var m map[string]string
	if json.Unmarshal(b, &m) != nil {
		return keys
	}
	for id, h := range m {
		n, err1 := strconv.ParseUint(id, 10, 32)
		pub, err2 := hex.DecodeString(h)
		if err1 == nil && err2 == nil && len(pub) == ed25519.PublicKeySize {
			keys[uint32(n)] = pub
		}
	}
	return keys
}

// pinServerKeys adds the server keys a certificate response listed to
// the pinned ones (protocol.md: they came over the connection whose TLS
// certificate is pinned). A key id already pinned keeps its key.
func (c *cli) pinServerKeys(listed []client.ServerKey) error {
	keys := c.serverKeys()
	changed := false
	for _, k := range listed {
		if _, ok := keys[k.ID]; !ok {
			keys[k.ID] = k.PublicKey
			changed = true
		}
	}
	if !changed {
		return nil
	}
	m := map[string]string{}
	for id, pub := range keys {
		m[strconv.FormatUint(uint64(id), 10)] = hex.EncodeToString(pub)
	}
	b, _ := json.Marshal(m)
	return writeAtomic(filepath.Join(c.dir, serverKeysFile), b)
}

// openSealed opens a sealed envelope and verifies its sender certificate
// against the pinned server keys. When none are pinned yet, or the
// certificate names a key id not pinned (the relay rotated), it asks the
// relay once over cl for a certificate, which lists its keys, and tries
// again.
func (c *cli) openSealed(ctx context.Context, cl *client.Client, d *e2e.Device, env *client.Envelope) (*client.Envelope, error) {
	keys := c.serverKeys()
	if len(keys) > 0 {
		opened, err := d.OpenSealed(env, keys, time.Now())
		if !errors.Is(err, e2e.ErrCertificate) {
			return opened, err
		}
	}
	conn, err := cl.Conn(ctx)
	if err != nil {
		return nil, err
	}
	if err := c.refreshServerKeys(ctx, conn); err != nil {
		return nil, err
	}
	return d.OpenSealed(env, c.serverKeys(), time.Now())
}

// refreshServerKeys fetches a new sender certificate over conn, which
// pins any new server key.
func (c *cli) refreshServerKeys(ctx context.Context, conn *client.Conn) error {
	_ = os.Remove(filepath.Join(c.dir, senderCertFile))
	_, err := c.senderCertificate(ctx, conn)
	return err
}
