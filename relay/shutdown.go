package relay

import (
	"context"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/pigeonhole/pigeonhole/spec"
)

// Shutting down (protocol.md, "Closing"): when Serve's context ends, the
// relay stops accepting connections and closes s.stopping. From then on
// every request a connection reads, and every request waiting for its
// session, is answered SHUTTING_DOWN; requests already running finish
// and are answered as usual. A connection is closed with the going-away
// code once it has no request in progress and no stream whose first frame
// is still unread, shutdownLinger after its last answer (so that answer
// reaches the client ahead of the close), or when Config.ShutdownGrace
// has passed, whichever is first.

// shutdownLinger is how long a connection stays open after its last
// answer before the going-away close. quic-go drops stream data it has
// not yet sent when a connection closes, and a client drops what it has
// not yet read.
const shutdownLinger = 500 * time.Millisecond

// errShuttingDown answers requests once the relay is stopping.
func errShuttingDown() *spec.Error {
	return spec.Err(spec.CodeShuttingDown, "the relay is shutting down; reconnect")
}

// stopping reports whether the relay has begun to shut down.
func (s *Server) isStopping() bool {
	select {
	case <-s.stopping:
		return true
	default:
		return false
	}
}

// beginStop starts the shutdown of every connection (once).
func (s *Server) beginStop() {
	s.stopOnce.Do(func() { close(s.stopping) })
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		go c.goAway(s.cfg.ShutdownGrace)
	}
}

// closeListener stops the handshakes when shutdown begins: quic-go
// refuses those in progress (CONNECTION_REFUSED) and answers no new one,
// so a client's retransmitted Initial reaches whichever relay binds the
// address next. A connection whose handshake had completed but that
// Serve had not taken yet waits in quic-go's accept queue, where nothing
// would ever read its streams or close it: it is closed here with the
// going-away code. (Left there, it would hang until the transport closed
// under it without a CONNECTION_CLOSE, and its client would wait for the
// idle timeout, a minute, before dialling again.)
func (s *Server) closeListener(ln *quic.Listener) {
	_ = ln.Close()
	for {
		// After Close, Accept returns the queued connections, then an
		// error.
		qc, err := ln.Accept(context.Background())
		if err != nil {
			return
		}
		_ = qc.CloseWithError(spec.CloseGoingAway, "relay shutting down")
	}
}

// beginRequest marks stream id's first frame as read and a request on it
// in progress, in one step (so the connection never looks idle between
// the two).
func (c *conn) beginRequest(id quic.StreamID) {
	c.mu.Lock()
	delete(c.undecoded, id)
	c.busy++
	c.broadcastLocked()
	c.mu.Unlock()
}

// endRequest marks a request answered.
func (c *conn) endRequest() {
	c.mu.Lock()
	c.busy--
	c.lastAnswer = time.Now()
	c.broadcastLocked()
	c.mu.Unlock()
}

// goAway closes the connection with the going-away code once it is idle
// (see above), or after grace.
func (c *conn) goAway(grace time.Duration) {
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	defer func() { _ = c.qc.CloseWithError(spec.CloseGoingAway, "relay shutting down") }()
	for {
		c.mu.Lock()
		idle := c.busy == 0 && len(c.undecoded) == 0
		ch, last := c.changed, c.lastAnswer
		c.mu.Unlock()
		var linger *time.Timer
		var lingered <-chan time.Time
		if idle {
			wait := shutdownLinger - time.Since(last)
			if last.IsZero() || wait <= 0 {
				return
			}
			linger = time.NewTimer(wait)
			lingered = linger.C
		}
		stop := false
		select {
		case <-ch:
		case <-lingered:
		case <-deadline.C:
			stop = true
		case <-c.ctx.Done():
			stop = true
		}
		if linger != nil {
			linger.Stop()
		}
		if stop {
			return
		}
	}
}
