package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
)

const relayFile = "relay.json"

// relayInfo is where this device's relay is, kept next to the keys.
type relayInfo struct {
	Addr        string `json:"addr"`
	Fingerprint string `json:"fingerprint"`
}

func (c *cli) options() (*client.Options, error) {
	b, err := os.ReadFile(filepath.Join(c.dir, relayFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, c.notInitialized()
	}
	if err != nil {
		return nil, err
	}
	var ri relayInfo
	if err := json.Unmarshal(b, &ri); err != nil {
		return nil, fmt.Errorf("%s: %w", relayFile, err)
	}
	return &client.Options{Addr: ri.Addr, Fingerprint: ri.Fingerprint}, nil
}

func (c *cli) notInitialized() error {
	return failf(`run "pigeon init -relay HOST:PORT -fingerprint HEX" first`, "no identity in %s", c.dir)
}

// device opens the registered device in the state directory.
func (c *cli) device() (*e2e.Device, error) {
	d, err := e2e.Open(c.dir)
	if errors.Is(err, e2e.ErrNoDevice) {
		return nil, c.notInitialized()
	}
	if errors.Is(err, e2e.ErrDamaged) {
		return nil, failf("restore "+c.dir+" from a backup, or move it away and run \"pigeon init\" or \"pigeon link\" again (your contacts will see a new safety number)",
			"the state in %s is damaged and cannot be used: %v", c.dir, strings.TrimPrefix(err.Error(), "e2e: the device state is damaged: "))
	}
	if err != nil {
		return nil, err
	}
	if d.DeviceID() == 0 {
		return nil, failf(`remove `+c.dir+` and run "pigeon init" again`, "this identity was never registered")
	}
	return d, nil
}

// registered returns the registered device, its relay and credentials.
func (c *cli) registered() (*e2e.Device, *client.Options, *client.Credentials, error) {
	d, err := c.device()
	if err != nil {
		return nil, nil, nil, err
	}
	opts, err := c.options()
	if err != nil {
		return nil, nil, nil, err
	}
	creds, err := d.Credentials()
	if err != nil {
		return nil, nil, nil, err
	}
	return d, opts, creds, nil
}

// sendOnly connects the registered device to its relay and opens a
// send-only session (window 0), which every command that makes requests
// needs. The caller closes the connection.
func (c *cli) sendOnly(ctx context.Context) (*e2e.Device, *client.Conn, error) {
	d, opts, creds, err := c.registered()
	if err != nil {
		return nil, nil, err
	}
	conn, err := dial(ctx, opts)
	if err != nil {
		return nil, nil, err
	}
	if _, err := conn.Authenticate(ctx, creds, 0); err != nil {
		conn.Close()
		return nil, nil, relayError("authenticate", err)
	}
	return d, conn, nil
}

// parseAccount reads an account id as printed by "pigeon id".
func parseAccount(s string) ([]byte, error) {
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != 16 {
		return nil, failf(`an account id is the 32 hex digits "pigeon id" prints`, "%q is not an account id", s)
	}
	return b, nil
}

// short shows the start of an account id, as the relay's logs do (all of
// it if it is shorter, as one from a misbehaving relay could be).
func short(acct []byte) string {
	h := hex.EncodeToString(acct)
	return h[:min(8, len(h))]
}
