package push

import "github.com/prometheus/client_golang/prometheus"

// metrics are the push series. Labels are bounded: the provider, and a
// reason from the providers' documented tables (anything else is "other").
type metrics struct {
	queued    *prometheus.CounterVec // provider
	sent      *prometheus.CounterVec // provider
	failed    *prometheus.CounterVec // provider, reason
	coalesced *prometheus.CounterVec // provider
	dropped   *prometheus.CounterVec // provider
	retries   *prometheus.CounterVec // provider
	removed   *prometheus.CounterVec // provider
}

func newMetrics(reg prometheus.Registerer, queueLen func() float64) (*metrics, error) {
	vec := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	m := &metrics{
		queued:    vec("pigeonhole_push_queued_total", "Pushes Notify handed to a provider's workers (at most one per device per window; retries are not counted again).", "provider"),
		sent:      vec("pigeonhole_push_sent_total", "Pushes the provider accepted.", "provider"),
		failed:    vec("pigeonhole_push_failed_total", "Pushes given up on, by the provider's reason (dead tokens included).", "provider", "reason"),
		coalesced: vec("pigeonhole_push_coalesced_total", "Pushes not sent because the device was pushed within the coalescing window.", "provider"),
		dropped:   vec("pigeonhole_push_dropped_total", "Pushes dropped because the push queue was full.", "provider"),
		retries:   vec("pigeonhole_push_retries_total", "Push attempts retried after throttling or a provider error.", "provider"),
		removed:   vec("pigeonhole_push_tokens_removed_total", "Tokens deleted because the provider reported them dead.", "provider"),
	}
	if reg == nil {
		return m, nil
	}
	queue := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pigeonhole_push_queue_length", Help: "Pushes waiting for a worker.",
	}, queueLen)
	for _, c := range []prometheus.Collector{m.queued, m.sent, m.failed, m.coalesced, m.dropped, m.retries, m.removed, queue} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
