package relay

import (
	"context"
	"errors"
	"fmt"

	"github.com/pigeonhole/pigeonhole/keys"
	"github.com/pigeonhole/pigeonhole/spec"
)

// AccountDeleter is a key directory that can remove a whole account, as
// an operator's admin command does. *keys.Store implements it; a key
// directory without it (the cluster one) makes DeleteAccount refuse.
type AccountDeleter interface {
	DeleteAccount(ctx context.Context, acct keys.AccountID) ([]uint32, error)
}

var _ AccountDeleter = (*keys.Store)(nil)

// ErrAdminUnsupported means the key directory cannot do what an admin
// command asked.
var ErrAdminUnsupported = errors.New("relay: the key directory does not support this admin command")

// DeleteAccount removes an account at the operator's request: its keys
// (so none of its devices can authenticate again and senders hear
// UNKNOWN_ACCOUNT), then its devices' connections, queues and push
// tokens. It returns the ids of the devices the account had; with
// keys.ErrUnknownAccount when there is no such account.
func (s *Server) DeleteAccount(ctx context.Context, acct keys.AccountID) ([]uint32, error) {
	kd, ok := s.keys.(AccountDeleter)
	if !ok {
		return nil, ErrAdminUnsupported
	}
	devs, err := kd.DeleteAccount(ctx, acct)
	if err != nil {
		return nil, err
	}
	// From here the account is gone; what follows is cleanup, done even
	// if the caller gives up (as revokeDevice does).
	ctx = context.WithoutCancel(ctx)
	s.closeAccount(acct)
	var errs []error
	for _, dev := range devs {
		a := addrOf(acct, dev)
		s.cluster.CloseDevice(a)
		if err := s.queues.DeleteDevice(ctx, a); err != nil {
			errs = append(errs, fmt.Errorf("delete device %d's queue: %w", dev, err))
		}
		if s.push != nil {
			if err := s.push.DeleteToken(ctx, pushDevice(a)); err != nil {
				errs = append(errs, fmt.Errorf("delete device %d's push token: %w", dev, err))
			}
		}
	}
	s.log.Info("account deleted by the operator", s.debugAttr("account", acct.String()), "devices", len(devs))
	return devs, errors.Join(errs...)
}

// closeAccount closes every connection authenticated as one of acct's
// devices.
func (s *Server) closeAccount(acct keys.AccountID) {
	s.mu.Lock()
	var victims []*conn
	for c := range s.conns {
		c.mu.Lock()
		if c.state == authOK && c.acct == acct {
			victims = append(victims, c)
		}
		c.mu.Unlock()
	}
	s.mu.Unlock()
	for _, c := range victims {
		_ = c.qc.CloseWithError(spec.CloseDeviceRemoved, "account deleted")
	}
}
