package messenger

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
	"github.com/pigeonhole/pigeonhole/spec"
)

// Linking a new device to an account (protocol.md, "Linking a device"):
// the new device calls StartLink and shows Link.URI as a QR code; the
// account's primary device (device 1) scans it, the person compares the
// check codes both show, and the primary calls ApproveLink; the new
// device's Link.Wait then returns its Messenger. The relay sends no
// event for a waiting new device: the person carries the URI.

// Link is a new device waiting to be approved.
type Link struct {
	// URI is what the primary device needs (show it as a QR code).
	URI string
	// CheckCode must match what the primary shows (LinkCheckCode).
	CheckCode string
	// Expires is when the relay gives the provisioning address up
	// (Wait then fails with the relay's UNKNOWN_ADDRESS).
	Expires time.Time

	home home
	name string
	cfg  Config
	conn *client.Conn
	prov *client.Provisioning
	key  *e2e.ProvisioningKey
}

// StartLink opens a provisioning address at the relay for a new device
// that will live in dir (which must not hold one yet) and be listed as
// name (cut as DeviceName does; "": no name). When the relay cannot be
// reached the error is an *UnreachableError.
func StartLink(ctx context.Context, dir string, cfg *Config, name string) (*Link, error) {
	return startLink(ctx, dirHome(dir), cfg, name)
}

// StorageLink is the Link of a new device whose state will be kept in a
// KV (StartLinkStorage): the same URI, check code, approval and Wait.
type StorageLink = Link

// StartLinkStorage is StartLink for a new device that will live in kv
// (which must not hold one yet).
func StartLinkStorage(ctx context.Context, kv KV, cfg *Config, name string) (*StorageLink, error) {
	return startLink(ctx, kvHome(kv), cfg, name)
}

// startLink is StartLink for a new device that will live in h.
func startLink(ctx context.Context, h home, cfg *Config, name string) (*Link, error) {
	if cfg == nil || cfg.RelayAddr == "" {
		return nil, errors.New("messenger: no relay address in the config")
	}
	if h.exists() {
		return nil, fmt.Errorf("messenger: %w", e2e.ErrExists)
	}
	conn, err := client.Dial(ctx, cfg.options())
	if err != nil {
		return nil, &UnreachableError{Err: err}
	}
	prov, err := conn.OpenProvisioning(ctx)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("messenger: start linking: %w", err)
	}
	key, err := e2e.NewProvisioningKey()
	if err != nil {
		prov.Close()
		conn.Close()
		return nil, fmt.Errorf("messenger: %w", err)
	}
	uri := client.LinkURI{Relay: cfg.RelayAddr, Fingerprint: cfg.Fingerprint, Address: prov.Address, PublicKey: key.Public()}.String()
	return &Link{URI: uri, CheckCode: checkCode(key.Public()), Expires: prov.Expires, home: h, name: name, cfg: *cfg, conn: conn, prov: prov, key: key}, nil
}

// Wait waits for the primary's approval, then joins the account as a
// new device and opens it; like Register, it uploads the device's first
// one-time KEM prekeys, and returns the Messenger with an error wrapping
// ErrPreKeysPending if that failed. The relay's refusals (its
// UNKNOWN_ADDRESS when the address expired, BAD_LINK_CODE,
// TOO_MANY_DEVICES) are wrapped *client.Error values. The link is used
// up either way.
func (l *Link) Wait(ctx context.Context) (*Messenger, error) {
	defer l.Close()
	sealed, err := l.prov.Wait(ctx)
	if err != nil {
		return nil, fmt.Errorf("messenger: wait for approval: %w", err)
	}
	p, err := l.key.Open(sealed)
	if err != nil {
		return nil, fmt.Errorf("%w: the approval could not be read: %w", ErrBadLink, err)
	}
	dev, reg, err := l.home.createLinked(p, l.cfg.preKeys())
	if err != nil {
		return nil, fmt.Errorf("messenger: %w", err)
	}
	sealedName, err := dev.SealDeviceName(DeviceName(l.name))
	var acct *client.Account
	if err == nil {
		acct, err = l.conn.LinkDevice(ctx, p.AccountID, p.LinkCode, reg, sealedName)
	}
	if err == nil {
		err = dev.Registered(acct.AccountID, acct.DeviceID)
	}
	if err != nil {
		l.home.undo()
		return nil, fmt.Errorf("messenger: link: %w", err)
	}
	return openNew(ctx, l.home.wrap(dev), &l.cfg)
}

// Close gives the provisioning address up.
func (l *Link) Close() {
	l.prov.Close()
	l.conn.Close()
}

// LinkCheckCode is the check code of a new device's link URI, which the
// person compares with the one the new device shows before approving.
func LinkCheckCode(uri string) (string, error) {
	u, err := client.ParseLinkURI(uri)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadLink, err)
	}
	return checkCode(u.PublicKey), nil
}

// ApproveLink lets the new device whose link URI this is join this
// (primary) device's account: it gets a link code from the relay and
// sends it with the account's identity, sealed to the new device's key.
// Whoever holds that key reads everything the account receives: approve
// only after the person compared the check codes.
func (m *Messenger) ApproveLink(ctx context.Context, uri string) error {
	u, err := client.ParseLinkURI(uri)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadLink, err)
	}
	if !strings.EqualFold(u.Fingerprint, m.cfg.Fingerprint) {
		return fmt.Errorf("%w: the new device uses another relay", ErrBadLink)
	}
	return m.conn(ctx, func(c *client.Conn) error {
		code, _, err := c.CreateLinkCode(ctx)
		if err != nil {
			return fmt.Errorf("messenger: link: %w", err)
		}
		sealed, err := m.store.SealProvisioning(u.PublicKey, code)
		if err != nil {
			return fmt.Errorf("messenger: %w", err)
		}
		if err := c.Provision(ctx, u.Address, sealed); err != nil {
			if spec.Code(client.ErrorCode(err)) == spec.CodeUnknownAddress {
				return fmt.Errorf("%w: the new device is no longer waiting: %w", ErrBadLink, err)
			}
			return fmt.Errorf("messenger: link: %w", err)
		}
		return nil
	})
}

// checkCode is what both sides of a link show: the first 40 bits of
// SHA-256 of the new device's provisioning key, as 3 groups of base32
// (the same as cmd/pigeon shows).
func checkCode(pub []byte) string {
	h := sha256.Sum256(pub)
	s := base32.StdEncoding.EncodeToString(h[:5])
	return s[0:3] + "-" + s[3:6] + "-" + s[6:8]
}
