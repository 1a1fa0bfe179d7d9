package client

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/pigeonhole/pigeonhole/spec"
)

// Provisioning is a new device's open provisioning stream: it has an
// address a primary device sends one message to.
type Provisioning struct {
	Address []byte    // 16 bytes: goes in the link URI
	Expires time.Time // the relay ends the stream then
	st      *quic.Stream
}

// OpenProvisioning opens a provisioning stream (no authentication needed)
// and returns its address.
func (c *Conn) OpenProvisioning(ctx context.Context) (*Provisioning, error) {
	st, err := c.qc.OpenStreamSync(ctx)
	if err != nil {
		return nil, fmt.Errorf("open provisioning: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { st.CancelRead(0); st.CancelWrite(0) })
	defer stop()
	if err := spec.WriteFrame(st, &spec.Request{Body: &spec.Request_OpenProvisioning{OpenProvisioning: &spec.ProvisioningOpen{}}}); err != nil {
		st.CancelRead(0)
		return nil, fmt.Errorf("open provisioning: %w", err)
	}
	var ev spec.ProvisioningEvent
	if err := spec.ReadFrame(st, spec.MaxFrameSize, &ev); err != nil {
		st.CancelRead(0)
		st.CancelWrite(0)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("open provisioning: %w", err)
	}
	if e := ev.GetError(); e != nil {
		st.CancelWrite(0)
		return nil, fmt.Errorf("open provisioning: %w", fromSpec(e))
	}
	a := ev.GetAddress()
	if a == nil || len(a.Address) != 16 {
		st.CancelWrite(0)
		return nil, errors.New("open provisioning: malformed answer")
	}
	return &Provisioning{Address: a.Address, Expires: time.UnixMilli(a.ExpiresMs), st: st}, nil
}

// Wait returns the message a primary device sent to the address. It fails
// when the address expires (an *Error with UNKNOWN_ADDRESS) or ctx ends.
func (p *Provisioning) Wait(ctx context.Context) ([]byte, error) {
	stop := context.AfterFunc(ctx, func() { p.st.CancelRead(0) })
	defer stop()
	var ev spec.ProvisioningEvent
	if err := spec.ReadFrame(p.st, spec.MaxFrameSize, &ev); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("provisioning: %w", err)
	}
	if e := ev.GetError(); e != nil {
		return nil, fmt.Errorf("provisioning: %w", fromSpec(e))
	}
	m := ev.GetMessage()
	if m == nil {
		return nil, errors.New("provisioning: malformed event")
	}
	return m.Body, nil
}

// Close ends the provisioning stream; its address is gone.
func (p *Provisioning) Close() {
	p.st.CancelRead(0)
	_ = p.st.Close()
}

// CreateLinkCode returns a single-use code that lets one new device join
// this (primary) device's account, and when it expires.
func (c *Conn) CreateLinkCode(ctx context.Context) ([]byte, time.Time, error) {
	resp, err := c.roundTrip(ctx, &spec.Request{Body: &spec.Request_CreateLinkCode{CreateLinkCode: &spec.CreateLinkCodeRequest{}}})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("create link code: %w", err)
	}
	r := resp.GetCreateLinkCode()
	return r.GetCode(), time.UnixMilli(r.GetExpiresMs()), nil
}

// Provision sends an opaque provisioning message (at most 64 KiB) to a
// new device's provisioning address.
func (c *Conn) Provision(ctx context.Context, address, body []byte) error {
	if _, err := c.roundTrip(ctx, &spec.Request{Body: &spec.Request_Provision{Provision: &spec.ProvisionRequest{Address: address, Body: body}}}); err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	return nil
}

// LinkDevice adds this new device to account with a link code. reg holds
// the device's keys; its identity key must be the account's.
// encryptedName is opaque to the relay.
func (c *Conn) LinkDevice(ctx context.Context, account, code []byte, reg *Registration, encryptedName []byte) (*Account, error) {
	if len(reg.AuthKey) != ed25519.PrivateKeySize {
		return nil, errors.New("link device: the auth key must be a 64-byte Ed25519 private key")
	}
	priv := ed25519.PrivateKey(reg.AuthKey)
	pub := priv.Public().(ed25519.PublicKey)
	proof, err := spec.RegisterProof(c.exporter, pub)
	if err != nil {
		return nil, fmt.Errorf("link device: %w", err)
	}
	resp, err := c.roundTrip(ctx, &spec.Request{Body: &spec.Request_LinkDevice{LinkDevice: &spec.LinkDeviceRequest{
		AccountId:           account,
		LinkCode:            code,
		AuthKey:             pub,
		AuthProof:           ed25519.Sign(priv, proof),
		IdentityKey:         reg.IdentityKey,
		RegistrationId:      reg.RegistrationID,
		SignedPrekey:        toSpecSigned(reg.SignedPreKey),
		Prekeys:             toSpecPreKeys(reg.PreKeys),
		EncryptedName:       encryptedName,
		LastResortKemPrekey: toSpecKem(reg.KemLastResort),
	}}})
	if err != nil {
		return nil, fmt.Errorf("link device: %w", err)
	}
	return &Account{AccountID: account, DeviceID: resp.GetLinkDevice().GetDeviceId()}, nil
}

// DeviceInfo describes one device of the account.
type DeviceInfo struct {
	DeviceID      uint32
	EncryptedName []byte
	Linked        time.Time // the day (UTC) it was linked
	LastSeen      time.Time // the last day (UTC) it connected; zero if never
}

// ListDevices lists this device's account's devices, ascending by id.
func (c *Conn) ListDevices(ctx context.Context) ([]DeviceInfo, error) {
	resp, err := c.roundTrip(ctx, &spec.Request{Body: &spec.Request_ListDevices{ListDevices: &spec.ListDevicesRequest{}}})
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	var out []DeviceInfo
	for _, d := range resp.GetListDevices().GetDevices() {
		out = append(out, DeviceInfo{DeviceID: d.DeviceId, EncryptedName: d.EncryptedName, Linked: fromDay(d.LinkedDay), LastSeen: fromDay(d.LastSeenDay)})
	}
	return out, nil
}

func fromDay(d uint32) time.Time {
	if d == 0 {
		return time.Time{}
	}
	return time.Unix(int64(d)*86400, 0).UTC()
}

// RevokeDevice removes a device of this (primary) device's account.
func (c *Conn) RevokeDevice(ctx context.Context, id uint32) error {
	if _, err := c.roundTrip(ctx, &spec.Request{Body: &spec.Request_RevokeDevice{RevokeDevice: &spec.RevokeDeviceRequest{DeviceId: id}}}); err != nil {
		return fmt.Errorf("revoke device: %w", err)
	}
	return nil
}
