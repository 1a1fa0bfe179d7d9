package relay

import (
	"bytes"
	"context"
	"errors"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/pigeonhole/pigeonhole/keys"
	"github.com/pigeonhole/pigeonhole/spec"
)

// primaryDevice is the device that may link and revoke others.
const primaryDevice = 1

func (c *conn) createLinkCode(id quic.StreamID) (*spec.CreateLinkCodeResponse, *spec.Error) {
	acct, dev, e := c.waitAuth(c.ctx, id)
	if e != nil {
		return nil, e
	}
	if dev != primaryDevice {
		return nil, spec.Err(spec.CodeNotPrimary, "only the primary device (device 1) may link devices")
	}
	code, expires, err := c.s.keys.CreateLinkCode(c.ctx, acct, c.s.cfg.LinkCodeLifetime)
	if err != nil {
		return nil, c.s.keyError("create a link code", err)
	}
	return &spec.CreateLinkCodeResponse{Code: code, ExpiresMs: expires.UnixMilli()}, nil
}

// linkDevice adds a device to an account with a link code. Like register
// it needs no session, proves possession of the auth key for this
// connection, and is rate-limited per source prefix (but not under the
// relay-wide new-account ceiling: it makes no account).
func (c *conn) linkDevice(r *spec.LinkDeviceRequest) (*spec.LinkDeviceResponse, *spec.Error) {
	if len(r.AccountId) != spec.AccountIDSize {
		return nil, spec.Err(spec.CodeBadRequest, "account_id must be %d bytes", spec.AccountIDSize)
	}
	if len(r.EncryptedName) > keys.MaxNameBytes {
		return nil, spec.Err(spec.CodeBadRequest, "encrypted_name is at most %d bytes", keys.MaxNameBytes)
	}
	if _, e := c.checkNewDevice(r.AuthKey, r.AuthProof, r.SignedPrekey, len(r.Prekeys)); e != nil {
		return nil, e
	}
	acct := keys.AccountID(r.AccountId)
	id, err := c.s.keys.LinkDevice(c.ctx, acct, r.LinkCode, keys.Device{
		AuthKey:        bytes.Clone(r.AuthKey),
		IdentityKey:    r.IdentityKey,
		RegistrationID: r.RegistrationId,
		SignedPreKey:   signedPreKeyFrom(r.SignedPrekey),
		Name:           bytes.Clone(r.EncryptedName),
		KemLastResort:  kemPreKeyFrom(r.LastResortKemPrekey),
	}, preKeysFrom(r.Prekeys))
	if err != nil {
		return nil, c.s.keyError("link a device", err)
	}
	c.s.log.Info("device linked", c.s.debugAttr("account", acct.String()), "device", id)
	c.s.devicesChanged(acct)
	return &spec.LinkDeviceResponse{DeviceId: id}, nil
}

func (c *conn) listDevices(id quic.StreamID) (*spec.ListDevicesResponse, *spec.Error) {
	acct, _, e := c.waitAuth(c.ctx, id)
	if e != nil {
		return nil, e
	}
	devs, err := c.s.keys.Devices(c.ctx, acct)
	if err != nil {
		return nil, c.s.keyError("list devices", err)
	}
	out := &spec.ListDevicesResponse{}
	for _, d := range devs {
		out.Devices = append(out.Devices, &spec.DeviceInfo{
			DeviceId:      d.ID,
			EncryptedName: d.Name,
			LinkedDay:     day(d.Created),
			LastSeenDay:   day(d.LastSeen),
		})
	}
	return out, nil
}

// day is t as days since the Unix epoch (UTC), 0 for the zero time.
func day(t time.Time) uint32 {
	if t.IsZero() {
		return 0
	}
	return uint32(t.Unix() / 86400)
}

// revokeDevice removes a device of the primary's account at once: keys,
// queue and push token, and closes its connections.
func (c *conn) revokeDevice(id quic.StreamID, r *spec.RevokeDeviceRequest) *spec.Error {
	acct, dev, e := c.waitAuth(c.ctx, id)
	if e != nil {
		return e
	}
	if dev != primaryDevice {
		return spec.Err(spec.CodeNotPrimary, "only the primary device (device 1) may revoke devices")
	}
	if r.DeviceId == primaryDevice {
		return spec.Err(spec.CodeNotPrimary, "the primary device cannot be revoked")
	}
	if err := c.s.keys.RemoveDevice(c.ctx, acct, r.DeviceId); err != nil {
		return c.s.keyError("revoke the device", err)
	}
	// The device can no longer authenticate; what remains is cleanup.
	// Its connections go first, then its queue and token; a failure there
	// is reported (the device is gone either way; its queue would expire
	// with the message lifetime).
	c.s.closeDevice(acct, r.DeviceId)
	c.s.cluster.CloseDevice(addrOf(acct, r.DeviceId))
	c.s.log.Info("device revoked", c.s.debugAttr("account", acct.String()), "device", r.DeviceId)
	c.s.devicesChanged(acct)
	ctx := context.WithoutCancel(c.ctx)
	a := addrOf(acct, r.DeviceId)
	if err := c.s.queues.DeleteDevice(ctx, a); err != nil {
		return c.s.internal("delete a revoked device's queue", err)
	}
	if c.s.push != nil {
		if err := c.s.push.DeleteToken(ctx, pushDevice(a)); err != nil {
			return c.s.internal("delete a revoked device's push token", err)
		}
	}
	return nil
}

// closeDevice closes every connection authenticated as the device.
func (s *Server) closeDevice(acct keys.AccountID, dev uint32) {
	s.mu.Lock()
	var victims []*conn
	for c := range s.conns {
		c.mu.Lock()
		if c.state == authOK && c.acct == acct && c.dev == dev {
			victims = append(victims, c)
		}
		c.mu.Unlock()
	}
	s.mu.Unlock()
	for _, c := range victims {
		_ = c.qc.CloseWithError(spec.CloseDeviceRemoved, "device revoked")
	}
}

// devicesChanged tells the account's connected devices its device list.
func (s *Server) devicesChanged(acct keys.AccountID) {
	ids, err := s.keys.DeviceIDs(context.Background(), acct)
	if err != nil {
		if !errors.Is(err, keys.ErrUnknownAccount) {
			s.internal("list devices", err)
		}
		return
	}
	ev := &spec.ServerEvent{Body: &spec.ServerEvent_DevicesChanged{DevicesChanged: &spec.DevicesChanged{DeviceIds: ids}}}
	for _, d := range ids {
		s.notifyDevice(addrOf(acct, d), ev)
	}
}
