package relay

import (
	"context"
	"errors"

	"google.golang.org/protobuf/proto"

	"github.com/pigeonhole/pigeonhole/keys"
	"github.com/pigeonhole/pigeonhole/queue"
	"github.com/pigeonhole/pigeonhole/spec"
)

// Cluster connects a relay to the other relays of a cluster: which
// devices have a receiving session on another relay (so that the push
// decision and online-only sends see the whole cluster), and the control
// messages one relay's handlers send to a device connected to another.
// A single relay has none (Server.UseCluster is not called).
type Cluster interface {
	// Start begins the exchange; h receives what other relays send,
	// until ctx ends.
	Start(ctx context.Context, h ClusterHandlers) error
	// SessionStarted and SessionEnded record this relay's receiving
	// sessions (called once per session).
	SessionStarted(a queue.Address)
	SessionEnded(a queue.Address)
	// Receiving reports whether a has a receiving session on another
	// relay that is alive.
	Receiving(a queue.Address) bool
	// CloseDevice has every other relay close a's connections (a
	// revoked device).
	CloseDevice(a queue.Address)
	// Notify sends an advisory server event (marshaled) to a's sessions
	// on other relays.
	Notify(a queue.Address, event []byte)
	// Offer sends an online-only envelope frame to the relay holding a's
	// receiving session, and reports whether there is one.
	Offer(a queue.Address, frame []byte) bool
}

// ClusterHandlers are the relay's answers to other relays' messages.
type ClusterHandlers struct {
	CloseDevice func(a queue.Address)
	Notify      func(a queue.Address, event []byte)
	Offer       func(a queue.Address, frame []byte)
	// Resync checks every authenticated connection against the key
	// directory and closes those of removed devices: for after this
	// relay lost its link to the others for a while, when a revoke may
	// have gone by unheard.
	Resync func()
}

// UseCluster makes the relay one of a cluster. Call it before Serve.
func (s *Server) UseCluster(c Cluster) {
	if c == nil {
		c = alone{}
	}
	s.cluster = c
}

// alone is the Cluster of a single relay: there is no other relay to
// hold a session or to tell anything.
type alone struct{}

func (alone) Start(context.Context, ClusterHandlers) error { return nil }
func (alone) SessionStarted(queue.Address)                 {}
func (alone) SessionEnded(queue.Address)                   {}
func (alone) Receiving(queue.Address) bool                 { return false }
func (alone) CloseDevice(queue.Address)                    {}
func (alone) Notify(queue.Address, []byte)                 {}
func (alone) Offer(queue.Address, []byte) bool             { return false }

// startCluster starts the exchange with the other relays.
func (s *Server) startCluster(ctx context.Context) error {
	return s.cluster.Start(ctx, ClusterHandlers{
		CloseDevice: func(a queue.Address) { s.closeDevice(a.Account, a.Device) },
		Notify: func(a queue.Address, event []byte) {
			var ev spec.ServerEvent
			if err := proto.Unmarshal(event, &ev); err != nil {
				s.log.Warn("cluster: malformed event from another relay", "err", err)
				return
			}
			s.sessions.notify(a, &ev)
		},
		Offer:  func(a queue.Address, frame []byte) { s.sessions.offer(a, frame) },
		Resync: func() { s.closeRemoved(ctx) },
	})
}

// closeRemoved closes the connections of devices that are no longer in
// the key directory.
func (s *Server) closeRemoved(ctx context.Context) {
	s.mu.Lock()
	var authed []*conn
	for c := range s.conns {
		c.mu.Lock()
		if c.state == authOK {
			authed = append(authed, c)
		}
		c.mu.Unlock()
	}
	s.mu.Unlock()
	for _, c := range authed {
		c.mu.Lock()
		acct, dev := c.acct, c.dev
		c.mu.Unlock()
		_, err := s.keys.Device(ctx, acct, dev)
		if errors.Is(err, keys.ErrUnknownDevice) || errors.Is(err, keys.ErrUnknownAccount) {
			s.log.Info("closing a device revoked while the cluster link was down", s.debugAttr("account", acct.String()), "device", dev)
			_ = c.qc.CloseWithError(spec.CloseDeviceRemoved, "device revoked")
		}
	}
}

// receivingAnywhere reports whether a has a receiving session on this
// relay or on another relay of the cluster.
func (s *Server) receivingAnywhere(a queue.Address) bool {
	return s.sessions.receiving(a) || s.cluster.Receiving(a)
}

// notifyDevice gives an advisory event to a's sessions, here and on the
// other relays.
func (s *Server) notifyDevice(a queue.Address, ev *spec.ServerEvent) {
	s.sessions.notify(a, ev)
	if b, err := proto.Marshal(ev); err == nil {
		s.cluster.Notify(a, b)
	}
}
