package relay

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the relay's Prometheus series. Labels are bounded: request
// type and error code names come from fixed tables.
type metrics struct {
	connections  prometheus.Gauge
	sessions     prometheus.Gauge
	requests     *prometheus.CounterVec // type, code
	sendSeconds  prometheus.Histogram
	accepted     prometheus.Counter
	delivered    prometheus.Counter
	acked        prometheus.Counter
	online       prometheus.Counter
	ackFlushSecs prometheus.Histogram
	limited      *prometheus.CounterVec // limit: new_accounts, prekey_claims, provisioning_source

	// Where the time of one message goes (README, "Where the time goes").
	requestWait  prometheus.Histogram     // frame read to handler start
	sendStage    *prometheus.HistogramVec // stage: checks, store
	sendChecks   prometheus.Observer      // sendStage's checks
	sendStore    prometheus.Observer      // sendStage's store
	deliverWrite prometheus.Histogram     // queue wake-up to envelopes written
}

// stageBuckets resolve 25 µs to 0.8 s.
var stageBuckets = prometheus.ExponentialBuckets(25e-6, 2, 16)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pigeonhole_connections", Help: "Open QUIC connections.",
		}),
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pigeonhole_sessions", Help: "Authenticated session streams.",
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pigeonhole_requests_total", Help: "Requests by type and result code.",
		}, []string{"type", "code"}),
		sendSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pigeonhole_send_durable_seconds",
			Help:    "Time from a send's arrival to its durable (fsynced) acceptance.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pigeonhole_envelopes_accepted_total", Help: "Device envelopes stored durably.",
		}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pigeonhole_envelopes_delivered_total", Help: "Envelopes written to session streams (redeliveries included).",
		}),
		acked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pigeonhole_envelopes_acked_total", Help: "Envelopes deleted after an ack.",
		}),
		online: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pigeonhole_envelopes_online_total", Help: "Online-only envelopes handed to connected devices (never stored).",
		}),
		ackFlushSecs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pigeonhole_ack_flush_seconds",
			Help:    "Time to make acks durable when a session closes.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pigeonhole_limited_total",
			Help: "Requests held back by a relay-wide or per-target limit: new_accounts (the relay-wide ceiling), prekey_claims (bundles served without a one-time prekey), provisioning_source (a source prefix's share of provisioning slots).",
		}, []string{"limit"}),
		requestWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pigeonhole_request_wait_seconds",
			Help:    "Time from a request frame's arrival (read off its stream) until a worker starts on it.",
			Buckets: stageBuckets,
		}),
		sendStage: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pigeonhole_send_stage_seconds",
			Help:    "Time a send spends in each stage: checks (authentication, rate limit, the recipient's device list) and store (idempotency claim and the synced commit).",
			Buckets: stageBuckets,
		}, []string{"stage"}),
		deliverWrite: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pigeonhole_delivery_write_seconds",
			Help:    "Time from a session being woken by an append until the new envelopes are handed to QUIC (queue read, framing, stream write).",
			Buckets: stageBuckets,
		}),
	}
	m.sendChecks = m.sendStage.WithLabelValues("checks")
	m.sendStore = m.sendStage.WithLabelValues("store")
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.connections, m.sessions, m.requests, m.sendSeconds, m.accepted, m.delivered, m.acked, m.online, m.ackFlushSecs, m.limited, m.requestWait, m.sendStage, m.deliverWrite} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
