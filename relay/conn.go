package relay

import (
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"golang.org/x/sync/semaphore"
	"google.golang.org/protobuf/proto"

	"github.com/pigeonhole/pigeonhole/keys"
	"github.com/pigeonhole/pigeonhole/queue"
	"github.com/pigeonhole/pigeonhole/spec"
)

// Authentication states of a connection.
const (
	authNone    = iota // no SessionOpen seen
	authPending        // SessionOpen being verified
	authOK             // verified: acct and dev are set
	authFailed         // refused: authErr is set
)

// conn is one client connection.
type conn struct {
	s        *Server
	qc       *quic.Conn
	ctx      context.Context
	remoteIP string
	prefix   string // network prefix the connection is counted under
	exporter []byte // TLS exporter value the device signs

	unauthBytes atomic.Int64 // first-frame bytes buffered while unauthenticated

	mu        sync.Mutex
	state     int
	acct      keys.AccountID
	dev       uint32
	authErr   *spec.Error
	undecoded map[quic.StreamID]struct{} // streams whose first frame is not read yet
	provOpen  bool                       // a provisioning stream is open
	changed   chan struct{}              // closed and replaced on every change above

	established bool        // authenticated, registered, linked or provisioning
	counted     bool        // counted against its prefix's unauthenticated connections
	deadline    *time.Timer // closes the connection unless established in AuthWait
	// For shutdown (shutdown.go), also under mu and broadcast on changed.
	busy       int       // requests read and not yet answered
	lastAnswer time.Time // when the last request was answered

	slots    chan struct{}       // one per request read and not yet answered (reqstream.go)
	reqBytes *semaphore.Weighted // request payload bytes held (reqbytes.go)
}

func newConn(s *Server, qc *quic.Conn) *conn {
	ip := ""
	if ua, ok := qc.RemoteAddr().(*net.UDPAddr); ok {
		ip = ua.IP.String()
	}
	return &conn{
		s:         s,
		qc:        qc,
		ctx:       qc.Context(),
		remoteIP:  ip,
		prefix:    sourcePrefix(qc.RemoteAddr(), s.cfg.IPv4PrefixBits, s.cfg.IPv6PrefixBits),
		undecoded: make(map[quic.StreamID]struct{}),
		changed:   make(chan struct{}),
		slots:     make(chan struct{}, spec.MaxRequestsInFlight),
		reqBytes:  semaphore.NewWeighted(s.cfg.ConnRequestBytes),
	}
}

// serve accepts the connection's streams until it closes.
func (c *conn) serve() {
	c.s.m.connections.Inc()
	defer c.s.m.connections.Dec()
	defer c.uncount() // also when the exporter fails below
	tlsState := c.qc.ConnectionState().TLS
	exp, err := tlsState.ExportKeyingMaterial(spec.ExporterLabel, nil, spec.ExporterLength)
	if err != nil {
		c.s.log.Warn("tls exporter unavailable", "err", err)
		_ = c.qc.CloseWithError(spec.CloseProtocol, "tls exporter unavailable")
		return
	}
	c.exporter = exp
	c.mu.Lock()
	c.deadline = time.AfterFunc(c.s.cfg.AuthWait, c.authDeadline)
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.deadline.Stop()
		c.mu.Unlock()
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		st, err := c.qc.AcceptStream(c.ctx)
		if err != nil {
			return
		}
		c.mu.Lock()
		c.undecoded[st.StreamID()] = struct{}{}
		c.mu.Unlock()
		wg.Add(1)
		c.s.workers.run(func() {
			defer wg.Done()
			c.handleStream(st)
		})
	}
}

// broadcastLocked wakes everyone waiting on the auth state. c.mu is held.
func (c *conn) broadcastLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *conn) decoded(id quic.StreamID) {
	c.mu.Lock()
	delete(c.undecoded, id)
	c.broadcastLocked()
	c.mu.Unlock()
}

func (c *conn) setAuth(acct keys.AccountID, dev uint32, e *spec.Error) {
	c.mu.Lock()
	if e != nil {
		c.state, c.authErr = authFailed, e
	} else {
		c.state, c.acct, c.dev = authOK, acct, dev
	}
	c.broadcastLocked()
	c.mu.Unlock()
	if e == nil {
		c.establish()
	}
}

// errSecondSession refuses a second SessionOpen on one connection.
var errSecondSession = spec.Err(spec.CodeProtocol, "this connection already has a session stream")

// claimSession moves the state from pending to verifying for exactly one
// stream; a second session stream on the connection is refused.
func (c *conn) claimSession(id quic.StreamID) *spec.Error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.undecoded, id)
	defer c.broadcastLocked()
	if c.state != authNone {
		return errSecondSession
	}
	c.state = authPending
	return nil
}

// waitAuth returns the connection's device once its SessionOpen has been
// verified. A request on stream id waits while an earlier stream's first
// frame is unread (it may be the SessionOpen) or verification is under
// way, at most AuthWait.
func (c *conn) waitAuth(ctx context.Context, id quic.StreamID) (keys.AccountID, uint32, *spec.Error) {
	timer := time.NewTimer(c.s.cfg.AuthWait)
	defer timer.Stop()
	for {
		c.mu.Lock()
		state, ch := c.state, c.changed
		acct, dev, authErr := c.acct, c.dev, c.authErr
		earlier := false
		if state == authNone {
			for other := range c.undecoded {
				if other < id {
					earlier = true
					break
				}
			}
		}
		c.mu.Unlock()
		switch {
		case state == authOK:
			return acct, dev, nil
		case state == authFailed:
			return acct, 0, authErr
		case state == authNone && !earlier:
			return acct, 0, spec.Err(spec.CodeUnauthenticated, "this request needs an authenticated connection: open the session stream first")
		}
		select {
		case <-ch:
		case <-timer.C:
			return acct, 0, spec.Err(spec.CodeUnauthenticated, "no session was authenticated in time")
		case <-ctx.Done():
			return acct, 0, spec.Err(spec.CodeShuttingDown, "connection closing")
		case <-c.s.stopping:
			return acct, 0, errShuttingDown()
		}
	}
}

// handleStream reads a stream's first frame and runs the request or the
// session it starts.
func (c *conn) handleStream(st *quic.Stream) {
	id := st.StreamID()
	_ = st.SetReadDeadline(time.Now().Add(c.s.cfg.AuthWait))
	var req spec.Request
	raw, budget, held, e := c.readFirstFrame(st, id)
	if e == nil && proto.Unmarshal(raw, &req) != nil {
		e = readErrorToSpec(errBadProto)
	}
	if e != nil {
		budget.release()
		c.releaseRequestBytes(held)
		c.decoded(id)
		c.refuseStream(st, e)
		return
	}
	_ = st.SetReadDeadline(time.Time{})
	if open := req.GetOpenSession(); open != nil {
		budget.release()
		c.releaseRequestBytes(held)
		if c.s.isStopping() {
			c.decoded(id)
			c.refuseSession(st, errShuttingDown())
			return
		}
		if e := c.claimSession(id); e != nil {
			c.refuseSession(st, e)
			return
		}
		c.runSession(st, open)
		return
	}
	if req.GetOpenProvisioning() != nil {
		budget.release()
		c.releaseRequestBytes(held)
		c.decoded(id)
		c.runProvisioning(st)
		return
	}
	c.serveRequests(st, &req, budget, held)
}

var errBadProto = errors.New("malformed protobuf")

// readErrorToSpec maps a first-frame read failure to the error a client
// is sent.
func readErrorToSpec(err error) *spec.Error {
	switch {
	case errors.Is(err, spec.ErrFrameTooLarge):
		return spec.Err(spec.CodeFrameTooLarge, "frame over the %d-byte limit", spec.MaxFrameSize)
	case errors.Is(err, errBadProto):
		return spec.Err(spec.CodeBadRequest, "frame is not a valid Request")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return spec.Err(spec.CodeBadRequest, "stream ended before a complete frame")
	default:
		return spec.Err(spec.CodeBadRequest, "no complete frame in time")
	}
}

// refuseStream answers a request stream with an error and closes it.
func (c *conn) refuseStream(st *quic.Stream, e *spec.Error) {
	c.s.m.requests.WithLabelValues("invalid", spec.Code(e.Code).String()).Inc()
	_ = st.SetWriteDeadline(time.Now().Add(c.s.cfg.AuthWait))
	_ = spec.WriteFrame(st, &spec.Response{Error: e})
	_ = st.Close()
	st.CancelRead(0)
}

// refuseSession answers a session stream with an error event and closes it.
func (c *conn) refuseSession(st *quic.Stream, e *spec.Error) {
	c.s.m.requests.WithLabelValues("open_session", spec.Code(e.Code).String()).Inc()
	_ = st.SetWriteDeadline(time.Now().Add(c.s.cfg.AuthWait))
	_ = spec.WriteFrame(st, &spec.ServerEvent{Body: &spec.ServerEvent_Error{Error: e}})
	_ = st.Close()
	st.CancelRead(0)
}

// authenticate verifies a SessionOpen against the device's auth key.
func (c *conn) authenticate(open *spec.SessionOpen) (keys.AccountID, uint32, *spec.Error) {
	var acct keys.AccountID
	if len(open.AccountId) != spec.AccountIDSize {
		return acct, 0, spec.Err(spec.CodeBadRequest, "account_id must be %d bytes", spec.AccountIDSize)
	}
	if len(open.Signature) != spec.AuthSignatureSize {
		return acct, 0, spec.Err(spec.CodeBadSignature, "signature must be %d bytes", spec.AuthSignatureSize)
	}
	copy(acct[:], open.AccountId)
	dev, err := c.s.keys.Device(c.ctx, acct, open.DeviceId)
	if err != nil {
		if errors.Is(err, keys.ErrUnknownAccount) || errors.Is(err, keys.ErrUnknownDevice) {
			return acct, 0, spec.Err(spec.CodeUnknownDevice, "no such device (it may have been removed)")
		}
		return acct, 0, c.s.internal("load device", err)
	}
	msg, err := spec.AuthMessage(c.exporter, open.AccountId, open.DeviceId)
	if err != nil || len(dev.AuthKey) != ed25519.PublicKeySize || !ed25519.Verify(dev.AuthKey, msg, open.Signature) {
		return acct, 0, spec.Err(spec.CodeBadSignature, "auth signature does not verify for this connection")
	}
	return acct, open.DeviceId, nil
}

// internal logs a store failure (without secrets) and returns the error a
// client sees.
func (s *Server) internal(what string, err error) *spec.Error {
	s.log.Error("store failure", "op", what, "err", err)
	return spec.Err(spec.CodeInternal, "the relay failed to %s; retry later", what)
}

func addrOf(acct keys.AccountID, dev uint32) queue.Address {
	return queue.Address{Account: acct, Device: dev}
}
