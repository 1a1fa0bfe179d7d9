package messenger

import (
	"context"
	"errors"
	"fmt"
	"strings"
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

	kv KV
	l  *Link // its dir is unused
}

// StartLinkStorage is StartLink for a new device that will live in kv
// (which must not hold one yet).
func StartLinkStorage(ctx context.Context, kv KV, cfg *Config, name string) (*StorageLink, error) {
	if cfg == nil || cfg.RelayAddr == "" {
		return nil, errors.New("messenger: no relay address in the config")
	}
	if _, err := e2e.OpenStorage(kv); err == nil {
		return nil, fmt.Errorf("messenger: %w", e2e.ErrExists)
	}
	conn, err := client.Dial(ctx, cfg.options())
	if err != nil {
		return nil, fmt.Errorf("messenger: %w", err)
	}
	prov, err := conn.OpenProvisioning(ctx)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("messenger: %w", err)
	}
	key, err := e2e.NewProvisioningKey()
	if err != nil {
		prov.Close()
		conn.Close()
		return nil, fmt.Errorf("messenger: %w", err)
	}
	uri := client.LinkURI{Relay: cfg.RelayAddr, Fingerprint: cfg.Fingerprint, Address: prov.Address, PublicKey: key.Public()}.String()
	l := &Link{URI: uri, CheckCode: checkCode(key.Public()), name: name, cfg: *cfg, conn: conn, prov: prov, key: key}
	return &StorageLink{URI: l.URI, CheckCode: l.CheckCode, kv: kv, l: l}, nil
}

// Wait is Link.Wait with the new device made in the link's KV.
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
	name := l.name
	for len(name) > e2e.MaxDeviceName {
		name = name[:len(name)-1]
	}
	sealedName, err := dev.SealDeviceName(strings.ToValidUTF8(name, ""))
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
	s := newKVStore(dev, sl.kv)
	if err := noteRotation(s, time.Now()); err != nil {
		return nil, err
	}
	return OpenStore(s, &l.cfg, nil)
}

// Close gives the provisioning address up.
func (sl *StorageLink) Close() { sl.l.Close() }
