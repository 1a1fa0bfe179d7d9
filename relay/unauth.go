package relay

import (
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/quic-go/quic-go"

	"github.com/pigeonhole/pigeonhole/spec"
)

// What a stranger can hold before it authenticates (protocol.md,
// "Limits"):
//
//   - a connection: at most AuthWait before it authenticates, registers,
//     links or opens provisioning, and at most MaxUnauthConnsPerPrefix such
//     connections per network prefix at once;
//   - memory: the first frame of a stream is capped at UnauthFrameBytes;
//     its buffer grows as bytes arrive, and every byte of it comes out of
//     a budget of unauthBytesPerConn per connection and UnauthBufferBytes
//     for the whole relay until the request is answered.

// unauthConnFrames is how many full-size unauthenticated first frames one
// connection may buffer at once: its share of the relay-wide budget is
// unauthConnFrames × UnauthFrameBytes.
const unauthConnFrames = 4

// errUnauthBudget refuses a first-frame byte over a budget.
var errUnauthBudget = errors.New("unauthenticated buffer budget used up")

// unauthRetryAfter is the retry_after_ms a stream refused for the budget
// is given: the budget frees as other first frames finish, within AuthWait.
const unauthRetryAfter = time.Second

// unauthMetrics are the series of this file.
type unauthMetrics struct {
	conns    prometheus.Gauge
	buffered prometheus.Gauge
	reading  prometheus.Gauge
	closed   *prometheus.CounterVec // reason
	refused  *prometheus.CounterVec // reason
}

func newUnauthMetrics(reg prometheus.Registerer) (*unauthMetrics, error) {
	m := &unauthMetrics{
		conns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pigeonhole_unauth_connections",
			Help: "Connections that have not yet authenticated, registered, linked or opened provisioning.",
		}),
		buffered: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pigeonhole_unauth_buffered_bytes",
			Help: "Bytes of first frames buffered for connections that have not authenticated.",
		}),
		reading: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pigeonhole_unauth_frames_reading",
			Help: "First frames on unauthenticated connections whose header has arrived and whose payload is being read.",
		}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pigeonhole_unauth_closed_total",
			Help: "Unauthenticated connections closed by the relay: auth_timeout or prefix_cap.",
		}, []string{"reason"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pigeonhole_unauth_frames_refused_total",
			Help: "First frames refused on unauthenticated connections: too_large or budget.",
		}, []string{"reason"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.conns, m.buffered, m.reading, m.closed, m.refused} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// unauthTable counts the unauthenticated connections of each prefix.
type unauthTable struct {
	mu sync.Mutex
	m  map[string]int
}

// admit counts one more unauthenticated connection for prefix, unless it
// already has max.
func (t *unauthTable) admit(prefix string, max int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = make(map[string]int)
	}
	if t.m[prefix] >= max {
		return false
	}
	t.m[prefix]++
	return true
}

func (t *unauthTable) release(prefix string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m[prefix]--; t.m[prefix] <= 0 {
		delete(t.m, prefix)
	}
}

// admitConn counts a new connection as unauthenticated, or refuses it
// when its prefix is at MaxUnauthConnsPerPrefix.
func (s *Server) admitConn(c *conn) bool {
	if !s.unauth.admit(c.prefix, s.cfg.MaxUnauthConnsPerPrefix) {
		s.um.closed.WithLabelValues("prefix_cap").Inc()
		return false
	}
	c.counted = true
	s.um.conns.Inc()
	return true
}

// establish ends the connection's unauthenticated time: it authenticated,
// registered, linked a device or opened a provisioning stream. It is no
// longer counted against its prefix or subject to the auth deadline.
func (c *conn) establish() {
	c.mu.Lock()
	was := c.established
	c.established = true
	c.mu.Unlock()
	if !was {
		c.uncount()
	}
}

// uncount stops counting the connection against its prefix, once.
func (c *conn) uncount() {
	c.mu.Lock()
	counted := c.counted
	c.counted = false
	c.mu.Unlock()
	if counted {
		c.s.unauth.release(c.prefix)
		c.s.um.conns.Dec()
	}
}

// authDeadline closes the connection unless it has been established; a
// SessionOpen still being verified is given a little longer.
func (c *conn) authDeadline() {
	c.mu.Lock()
	established, pending, timer := c.established, c.state == authPending, c.deadline
	c.mu.Unlock()
	switch {
	case established:
	case pending:
		timer.Reset(c.s.cfg.AuthWait / 10)
	default:
		c.s.um.closed.WithLabelValues("auth_timeout").Inc()
		_ = c.qc.CloseWithError(spec.CloseAuthTimeout, "not authenticated in time")
	}
}

// authenticated reports whether the connection's session is verified.
func (c *conn) authenticated() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state == authOK
}

// unauthReservation is the budget one first frame holds.
type unauthReservation struct {
	c    *conn
	held int64
}

func (r *unauthReservation) reserve(n int) error {
	s := r.c.s
	if r.c.unauthBytes.Add(int64(n)) > int64(unauthConnFrames*s.cfg.UnauthFrameBytes) {
		r.c.unauthBytes.Add(-int64(n))
		return errUnauthBudget
	}
	if s.unauthBytes.Add(int64(n)) > s.cfg.UnauthBufferBytes {
		s.unauthBytes.Add(-int64(n))
		r.c.unauthBytes.Add(-int64(n))
		return errUnauthBudget
	}
	r.held += int64(n)
	s.um.buffered.Add(float64(n))
	return nil
}

// release gives the reservation back; it may be called more than once.
func (r *unauthReservation) release() {
	if r == nil || r.held == 0 {
		return
	}
	r.c.unauthBytes.Add(-r.held)
	r.c.s.unauthBytes.Add(-r.held)
	r.c.s.um.buffered.Sub(float64(r.held))
	r.held = 0
}

// readFirstFrame reads a stream's first frame. On an authenticated
// connection it may be up to MaxFrameSize, and its payload is read
// against the connection's request byte budget (reqbytes.go); held is
// what it took. Otherwise a frame over UnauthFrameBytes waits, unread,
// for the connection's session (it may be a large request pipelined
// behind open_session) and is refused if none is verified; a smaller one
// is read against the unauthenticated budget, which the returned
// reservation holds until it is released.
func (c *conn) readFirstFrame(st *quic.Stream, id quic.StreamID) (raw []byte, r *unauthReservation, held int64, e *spec.Error) {
	n, err := spec.ReadFrameHeader(st, spec.MaxFrameSize)
	if err != nil {
		return nil, nil, 0, readErrorToSpec(err)
	}
	return c.readPayload(st, id, n, 0)
}

// readPayload reads the n-byte payload of a frame whose header has been
// read. held is the request byte budget the caller took for it already
// (readNextRequest, before its in-flight slot); with none, a payload
// read on an authenticated connection takes it here, after any wait for
// the session, and returns it in held. A first frame holds no slot, so
// it may wait for the budget without holding up the requests that give
// it back.
func (c *conn) readPayload(st *quic.Stream, id quic.StreamID, n int, held int64) ([]byte, *unauthReservation, int64, *spec.Error) {
	if !c.authenticated() && n > c.s.cfg.UnauthFrameBytes {
		if _, _, e := c.waitAuth(c.ctx, id); e != nil {
			if spec.Code(e.Code) == spec.CodeShuttingDown {
				return nil, nil, held, e
			}
			c.s.um.refused.WithLabelValues("too_large").Inc()
			return nil, nil, held, spec.Err(spec.CodeFrameTooLarge,
				"a frame over %d bytes needs an authenticated connection (open the session stream first)", c.s.cfg.UnauthFrameBytes)
		}
	}
	if c.authenticated() {
		if held == 0 {
			var err error
			if held, err = c.holdRequestBytes(n); err != nil {
				return nil, nil, 0, spec.Err(spec.CodeShuttingDown, "connection closing")
			}
		}
		// The deadline runs from the moment the payload may be read.
		_ = st.SetReadDeadline(time.Now().Add(c.s.cfg.AuthWait))
		raw, err := spec.ReadFramePayload(st, n, nil)
		if err != nil {
			return nil, nil, held, readErrorToSpec(err)
		}
		return raw, nil, held, nil
	}
	r := &unauthReservation{c: c}
	c.s.um.reading.Inc()
	raw, err := spec.ReadFramePayload(st, n, r.reserve)
	c.s.um.reading.Dec()
	if err != nil {
		r.release()
		if errors.Is(err, errUnauthBudget) {
			c.s.um.refused.WithLabelValues("budget").Inc()
			e := spec.Err(spec.CodeRateLimited, "the relay is buffering too much for unauthenticated connections; retry shortly")
			e.RetryAfterMs = uint32(unauthRetryAfter / time.Millisecond)
			return nil, nil, held, e
		}
		return nil, nil, held, readErrorToSpec(err)
	}
	return raw, r, held, nil
}
