package messenger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
)

// StorageLink is a Link for a new device whose state will be kept in a
// KV (StartLinkStorage): the same URI, check code and approval.
type StorageLink struct {
	// URI is what the primary device needs (show it as a QR code).
	URI string
	// CheckCode must match what the primary shows (LinkCheckCode).
	CheckCode string
	// Expires is when the relay gives the provisioning address up
	// (Wait then fails with the relay's UNKNOWN_ADDRESS).
	Expires time.Time

	kv KV
	l  *Link // its dir is unused
}

// StartLinkStorage is StartLink for a new device that will live in kv
// (which must not hold one yet). It repeats StartLink and Link.Wait
// with the device made in kv; keep the two in step.
func StartLinkStorage(ctx context.Context, kv KV, cfg *Config, name string) (*StorageLink, error) {
	if cfg == nil || cfg.RelayAddr == "" {
		return nil, errors.New("messenger: no relay address in the config")
	}
	if _, err := e2e.OpenStorage(kv); err == nil {
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
	l := &Link{URI: uri, CheckCode: checkCode(key.Public()), Expires: prov.Expires, name: name, cfg: *cfg, conn: conn, prov: prov, key: key}
	return &StorageLink{URI: l.URI, CheckCode: l.CheckCode, Expires: l.Expires, kv: kv, l: l}, nil
}

// Wait is Link.Wait with the new device made in the link's KV: it
// uploads the first one-time KEM prekeys too (ErrPreKeysPending).
func (sl *StorageLink) Wait(ctx context.Context) (*Messenger, error) {
	l := sl.l
	defer l.Close()
	sealed, err := l.prov.Wait(ctx)
	if err != nil {
		return nil, fmt.Errorf("messenger: wait for approval: %w", err)
	}
	p, err := l.key.Open(sealed)
	if err != nil {
		return nil, fmt.Errorf("%w: the approval could not be read: %w", ErrBadLink, err)
	}
	dev, reg, err := e2e.CreateLinkedIn(sl.kv, p, l.cfg.preKeys())
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
		undoCreateKV(sl.kv)
		return nil, fmt.Errorf("messenger: link: %w", err)
	}
	return openNew(ctx, newKVStore(dev, sl.kv), &l.cfg)
}

// Close gives the provisioning address up.
func (sl *StorageLink) Close() { sl.l.Close() }
