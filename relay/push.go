package relay

import (
	"context"
	"errors"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/pigeonhole/pigeonhole/push"
	"github.com/pigeonhole/pigeonhole/queue"
	"github.com/pigeonhole/pigeonhole/spec"
)

// Pusher wakes devices that have no session stream. *push.Service
// implements it. Notify and Connected must not block.
type Pusher interface {
	SetToken(ctx context.Context, d push.Device, t push.Token) error
	DeleteToken(ctx context.Context, d push.Device) error
	Notify(d push.Device)
	Connected(d push.Device)
}

var _ Pusher = (*push.Service)(nil)

// UsePush makes the relay push to devices without a session through p.
// Call it before Serve. Without it the relay sends no pushes and refuses
// set_push_token with PUSH_UNAVAILABLE.
func (s *Server) UsePush(p Pusher) { s.push = p }

func pushDevice(a queue.Address) push.Device {
	return push.Device{Account: a.Account, ID: a.Device}
}

// setPushToken registers, replaces or removes the device's push token.
func (c *conn) setPushToken(id quic.StreamID, r *spec.SetPushTokenRequest) *spec.Error {
	acct, dev, e := c.waitAuth(c.ctx, id)
	if e != nil {
		return e
	}
	d := pushDevice(addrOf(acct, dev))
	var tok push.Token
	switch t := r.Token.(type) {
	case nil:
		if c.s.push == nil {
			return nil // nothing is stored, so nothing to remove
		}
		if err := c.s.push.DeleteToken(c.ctx, d); err != nil {
			return c.s.internal("delete push token", err)
		}
		return nil
	case *spec.SetPushTokenRequest_Apns:
		if t.Apns == nil {
			return spec.Err(spec.CodeBadRequest, "apns token is empty")
		}
		tok = push.APNsToken(t.Apns.DeviceToken, t.Apns.Topic, t.Apns.Sandbox)
	case *spec.SetPushTokenRequest_Fcm:
		if t.Fcm == nil {
			return spec.Err(spec.CodeBadRequest, "fcm token is empty")
		}
		tok = push.FCMToken(t.Fcm.RegistrationToken)
	}
	// A malformed token is BAD_REQUEST whatever the relay's push
	// configuration, so a client's answer does not depend on it.
	if err := tok.Validate(); err != nil {
		return spec.Err(spec.CodeBadRequest, "%v", err)
	}
	if c.s.push == nil {
		return spec.Err(spec.CodePushUnavailable, "this relay sends no pushes")
	}
	err := c.s.push.SetToken(c.ctx, d, tok)
	switch {
	case err == nil:
		// A revoke may have deleted the token store's entry just before
		// this wrote it: a token must not outlive its device.
		if _, derr := c.s.keys.Device(c.ctx, acct, dev); derr != nil {
			_ = c.s.push.DeleteToken(context.WithoutCancel(c.ctx), d)
			return spec.Err(spec.CodeUnknownDevice, "no such device (it may have been removed)")
		}
		return nil
	case errors.Is(err, push.ErrInvalidToken):
		return spec.Err(spec.CodeBadRequest, "%v", err)
	case errors.Is(err, push.ErrProviderOff):
		return spec.Err(spec.CodePushUnavailable, "this relay does not push through %s", tok.Provider)
	}
	return c.s.internal("store push token", err)
}

// notifyOffline pushes to the recipients of a send that have no session
// stream to deliver on.
func (s *Server) notifyOffline(msgs []queue.Message) {
	if s.push == nil {
		return
	}
	for _, m := range msgs {
		if !s.receivingAnywhere(m.To) {
			s.push.Notify(pushDevice(m.To))
		}
	}
}

// sessionEnded pushes to a device whose last receiving session ended
// with envelopes it did not acknowledge (the app may have died holding
// them) or was not given (appended while the session was closing), so
// that mail does not wait for the device to come back by itself.
func (s *Server) sessionEnded(a queue.Address, cursor uint64, unacked bool) {
	if s.push == nil || s.receivingAnywhere(a) {
		return
	}
	if unacked {
		s.push.Notify(pushDevice(a))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	items, err := s.queues.Read(ctx, a, cursor, 1, maxReadBytes)
	if err == nil && len(items) > 0 {
		s.push.Notify(pushDevice(a))
	}
}
