package relay

import (
	"github.com/prometheus/client_golang/prometheus"
)

// A connection's request byte budget (protocol.md, "Streams", item 4):
// before the relay reads a request frame's payload it takes the payload's
// length, up to Config.ConnRequestBytes, from the connection's budget, and
// gives it back once the request's answer has been handed to QUIC (or the
// frame was refused). A connection therefore holds at most
// ConnRequestBytes of request payloads, and their decoded requests, at a
// time, whatever the number of its streams and requests in flight; a
// frame larger than the whole budget is read alone. A reader that finds
// the budget used up reads no further than the frame's header, so QUIC's
// flow control holds the client back: nothing is refused.
//
// Lock order: a frame takes its bytes before its in-flight slot (the
// slots of reqstream.go), never after, and a request that holds a slot
// never waits for bytes, so the two cannot wait on each other.
//
// There is no relay-wide budget on top. Every frame a stranger can send
// before it authenticates already comes out of one (unauth.go); an
// authenticated connection's share is bounded here; and a relay-wide
// pool would let a few connections that claim large frames and send them
// slowly stall every other connection's requests (x/sync's semaphore
// serves waiters in order), which is worse than the memory it saves.

// reqMetrics are the series of the request byte budget and the answer
// writer.
type reqMetrics struct {
	held            prometheus.Gauge
	waiting         prometheus.Gauge
	waits           prometheus.Counter
	slotWaiting     prometheus.Gauge
	inFlight        prometheus.Gauge
	answersPerWrite prometheus.Histogram
	unwritten       prometheus.Gauge
}

func newReqMetrics(reg prometheus.Registerer) (*reqMetrics, error) {
	m := &reqMetrics{
		held: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pigeonhole_request_budget_bytes",
			Help: "Request payload bytes held against the connections' request byte budgets (read, or being read, and not yet answered).",
		}),
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pigeonhole_request_budget_waiting",
			Help: "Request frames whose header has arrived and whose payload waits for its connection's request byte budget.",
		}),
		waits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pigeonhole_request_budget_waits_total",
			Help: "Request frames that waited for their connection's request byte budget before their payload was read.",
		}),
		slotWaiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pigeonhole_request_slot_waiting",
			Help: "Request frames that wait for one of their connection's in-flight slots (spec.MaxRequestsInFlight over all its request streams).",
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pigeonhole_requests_in_flight",
			Help: "Requests read and not yet answered (each holds one of its connection's in-flight slots).",
		}),
		answersPerWrite: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pigeonhole_request_answers_per_write",
			Help:    "Answers carried by one write on a request stream (answers ready together leave in one write).",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64},
		}),
		unwritten: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pigeonhole_request_answers_unwritten",
			Help: "Answers ready on request streams and not yet handed to QUIC: waiting for their stream's write in progress, or in it (the answers of a client that does not read them stay here).",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.held, m.waiting, m.waits, m.slotWaiting, m.inFlight, m.answersPerWrite, m.unwritten} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// holdRequestBytes takes the budget for an n-byte payload: min(n,
// ConnRequestBytes) bytes, waiting until the connection's earlier
// requests give enough back. It returns what it took, for
// releaseRequestBytes, or errConnClosed if the connection closed first.
func (c *conn) holdRequestBytes(n int) (int64, error) {
	w := min(int64(n), c.s.cfg.ConnRequestBytes)
	if w <= 0 {
		return 0, nil
	}
	m := c.s.rm
	if !c.reqBytes.TryAcquire(w) {
		m.waits.Inc()
		m.waiting.Inc()
		err := c.reqBytes.Acquire(c.ctx, w)
		m.waiting.Dec()
		if err != nil {
			return 0, errConnClosed
		}
	}
	m.held.Add(float64(w))
	return w, nil
}

// releaseRequestBytes gives back what holdRequestBytes took.
func (c *conn) releaseRequestBytes(w int64) {
	if w <= 0 {
		return
	}
	c.reqBytes.Release(w)
	c.s.rm.held.Sub(float64(w))
}
