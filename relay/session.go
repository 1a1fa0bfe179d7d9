package relay

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"google.golang.org/protobuf/proto"

	"github.com/pigeonhole/pigeonhole/queue"
	"github.com/pigeonhole/pigeonhole/spec"
)

// sessionTable finds the live sessions of a device, to tell them things
// (prekeys running low) from other connections' handlers.
type sessionTable struct {
	mu sync.Mutex
	m  map[queue.Address]map[*session]struct{}
}

func newSessionTable() *sessionTable {
	return &sessionTable{m: make(map[queue.Address]map[*session]struct{})}
}

func (t *sessionTable) add(s *session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	set := t.m[s.addr]
	if set == nil {
		set = make(map[*session]struct{})
		t.m[s.addr] = set
	}
	set[s] = struct{}{}
}

func (t *sessionTable) remove(s *session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m[s.addr], s)
	if len(t.m[s.addr]) == 0 {
		delete(t.m, s.addr)
	}
}

// receiving reports whether a has a session stream that delivers (its
// window is not 0).
func (t *sessionTable) receiving(a queue.Address) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for s := range t.m[a] {
		if s.window > 0 {
			return true
		}
	}
	return false
}

// offer hands an online-only envelope frame to a's receiving sessions and
// reports whether any took it (a backed-up session misses it).
func (t *sessionTable) offer(a queue.Address, frame []byte) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	took := false
	for s := range t.m[a] {
		if s.window == 0 {
			continue
		}
		select {
		case <-s.quit:
			continue // delivery has stopped; the frame would be lost
		default:
		}
		// A device that does not read holds at most maxOnlineBytes here.
		if s.onlineBytes.Add(int64(len(frame))) > maxOnlineBytes {
			s.onlineBytes.Add(-int64(len(frame)))
			continue
		}
		select {
		case s.online <- frame:
			took = true
			s.kick()
		default:
			s.onlineBytes.Add(-int64(len(frame)))
		}
	}
	return took
}

// maxOnlineBytes bounds the online-only frames waiting on one session.
const maxOnlineBytes = 1 << 20

// notify queues ev for every live session of a; a session whose event
// queue is full misses it (these events are advisory).
func (t *sessionTable) notify(a queue.Address, ev *spec.ServerEvent) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for s := range t.m[a] {
		select {
		case s.events <- ev:
			s.kick()
		default:
		}
	}
}

// session is one authenticated session stream: the relay delivers the
// device's queue on it and reads acks from it.
type session struct {
	c           *conn
	st          *quic.Stream
	addr        queue.Address
	window      int
	events      chan *spec.ServerEvent // advisory events from other handlers
	online      chan []byte            // online-only envelope frames, never stored
	onlineBytes atomic.Int64           // bytes in online, bounded by maxOnlineBytes
	inflight    inflight               // written, not yet acked
	quit        chan struct{}          // closed when delivery stops
	clean       bool                   // the reader saw the client's FIN

	// Delivery runs as a pump (pump.go): on a worker while there is
	// something to write, on no goroutine at all while there is not.
	pm      sync.Mutex
	started bool           // the first pump may run (the session is ready)
	pumping bool           // a pump is scheduled or running
	again   bool           // something came since the running pump looked
	stopped bool           // no pump is to start again
	running sync.WaitGroup // the pump scheduled or running, if any
	wokeAt  atomic.Int64   // unix ns of the append that woke the pump, 0: none pending

	// The pump's own state: one pump runs at a time, and each starts
	// after the previous one ended (under pm).
	cursor  uint64 // the last seq written
	drained bool   // "drained" was written since the last envelope
	failed  bool   // a write or read failed: the session is ending
}

// ackTimeout bounds applying one ack frame.
const ackTimeout = 10 * time.Second

// maxReadBytes bounds one queue read on the delivery path.
const maxReadBytes = 1 << 20

// runSession authenticates a SessionOpen and then serves the session
// stream until the client finishes it or the connection closes.
func (c *conn) runSession(st *quic.Stream, open *spec.SessionOpen) {
	acct, dev, e := c.authenticate(open)
	c.setAuth(acct, dev, e)
	if e == nil {
		// A revoke that removed the device after authenticate loaded it
		// scanned for connections before this one was authenticated:
		// look again, so a revoked device never keeps a session.
		if _, err := c.s.keys.Device(c.ctx, acct, dev); err != nil {
			_ = c.qc.CloseWithError(spec.CloseDeviceRemoved, "device revoked")
			return
		}
	}
	if e != nil {
		c.s.log.Info("session refused", "code", spec.Code(e.Code).String(), c.s.debugAttr("ip", c.remoteIP))
		c.refuseSession(st, e)
		return
	}
	c.s.m.requests.WithLabelValues("open_session", spec.CodeOK.String()).Inc()
	window := min(int(open.Window), c.s.cfg.MaxWindow)
	s := &session{
		c:      c,
		st:     st,
		addr:   addrOf(acct, dev),
		window: window,
		events: make(chan *spec.ServerEvent, 8),
		online: make(chan []byte, 32),
		quit:   make(chan struct{}),
	}
	// The session is in the table (and the push window reset) before the
	// client hears it is ready, so a send after that finds it receiving.
	c.s.sessions.add(s)
	if window > 0 {
		c.s.cluster.SessionStarted(s.addr)
		defer c.s.cluster.SessionEnded(s.addr)
	}
	if window > 0 && c.s.push != nil {
		c.s.push.Connected(pushDevice(s.addr))
	}
	ready := &spec.ServerEvent{Body: &spec.ServerEvent_Ready{Ready: &spec.SessionReady{
		Window: uint32(window), MaxEnvelopeBytes: uint32(c.s.cfg.MaxEnvelopeBytes),
	}}}
	if err := spec.WriteFrame(st, ready); err != nil {
		c.s.sessions.remove(s)
		if window > 0 {
			// Connected reset the push window; mail may be waiting.
			c.s.sessionEnded(s.addr, 0, false)
		}
		return
	}
	c.s.m.sessions.Inc()
	defer c.s.m.sessions.Dec()
	if err := c.s.keys.Seen(c.ctx, acct, dev, c.s.now()); err != nil {
		c.s.internal("record last seen", err)
	}
	s.checkPreKeys()
	cancelWatch := c.s.queues.WatchFunc(s.addr, s.woken)
	s.start()
	// This goroutine reads acks for the session's life; delivery needs
	// none of its own while there is nothing to deliver.
	s.readAcks()
	cancelWatch()
	// Stop delivery and wait for a pump still writing, so no write or
	// ack runs after the relay's final flush.
	s.stop()
	if !s.failed {
		s.finish()
	}
	c.s.sessions.remove(s)
	if window > 0 {
		c.s.sessionEnded(s.addr, s.cursor, s.inflight.len() > 0)
	}
}

// maxClientEventBytes bounds a ClientEvent's payload (the frame's length
// prefix), protocol.md "Acknowledgements".
const maxClientEventBytes = 64 << 10

// readAcks reads ClientEvent frames until the client finishes the stream
// or the connection ends. Acks delete at once (without fsync). A frame
// that breaks the protocol (over maxClientEventBytes, not a ClientEvent,
// cut short by the client's FIN, or without an ack) closes the connection
// with CloseProtocol; a client's reset of the stream ends the session,
// and finish resets the relay's side in turn.
func (s *session) readAcks() {
	for {
		var ev spec.ClientEvent
		raw, err := spec.ReadFrameBytes(s.st, maxClientEventBytes)
		switch {
		case err == nil:
			if proto.Unmarshal(raw, &ev) != nil {
				_ = s.c.qc.CloseWithError(spec.CloseProtocol, "malformed ClientEvent on the session stream")
				return
			}
		case errors.Is(err, io.EOF):
			s.clean = true
			return
		case errors.Is(err, spec.ErrFrameTooLarge):
			_ = s.c.qc.CloseWithError(spec.CloseProtocol, "ClientEvent over 64 KiB on the session stream")
			return
		case errors.Is(err, io.ErrUnexpectedEOF):
			_ = s.c.qc.CloseWithError(spec.CloseProtocol, "session stream ended inside a ClientEvent")
			return
		default:
			return // the client reset the stream, or the connection ended
		}
		ack := ev.GetAck()
		if ack == nil {
			_ = s.c.qc.CloseWithError(spec.CloseProtocol, "unexpected frame on the session stream")
			return
		}
		// Their places in the window free whether or not the delete
		// works: if it fails, the envelopes stay queued and come again on
		// a later session.
		seqs, ok := s.inflight.ack(ack)
		if !ok {
			_ = s.c.qc.CloseWithError(spec.CloseProtocol, "Ack range whose first is after its last")
			return
		}
		if len(seqs) == 0 {
			continue
		}
		// An ack the client sent is applied even if the connection closes
		// right after it (a cluster's delete is a request away), so the
		// device is not given the message again.
		actx, cancel := context.WithTimeout(context.WithoutCancel(s.c.ctx), ackTimeout)
		n, err := s.c.s.queues.Ack(actx, s.addr, seqs)
		cancel()
		if err != nil {
			s.c.s.internal("delete acked envelopes", err)
		}
		s.c.s.m.acked.Add(float64(n))
		s.kick() // room in the window
	}
}

// finish ends a session the client finished: its acks are made durable
// before the relay's FIN, so a client that waits for the FIN knows its
// acks will not be undone by a crash.
func (s *session) finish() {
	if !s.clean {
		// The client reset its side (or broke the protocol, and the
		// connection is closing): end ours visibly, not in silence.
		s.st.CancelWrite(0)
		return
	}
	start := time.Now()
	if err := s.c.s.queues.Flush(s.c.ctx); err != nil {
		s.c.s.internal("flush acks", err)
		s.st.CancelWrite(0)
		return
	}
	s.c.s.m.ackFlushSecs.Observe(time.Since(start).Seconds())
	_ = s.st.Close()
}

// checkPreKeys tells a device that opens a session when its one-time
// prekeys are low, before anything else on the stream: its X25519 ones,
// or, if it has a last-resort KEM prekey (it uses post-quantum keys), its
// KEM ones.
func (s *session) checkPreKeys() {
	n, err := s.c.s.keys.PreKeyCount(s.c.ctx, s.addr.Account, s.addr.Device)
	if err != nil {
		return
	}
	kn, lastResort, err := s.c.s.keys.KemPreKeyCount(s.c.ctx, s.addr.Account, s.addr.Device)
	if err != nil {
		return
	}
	if th := s.c.s.cfg.PreKeyLowThreshold; n < th || (lastResort && kn < th) {
		_ = spec.WriteFrame(s.st, preKeysLowEvent(n, kn))
	}
}
