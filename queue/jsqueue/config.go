package jsqueue

import "time"

// Config sets the stream and the queues' limits. Zero values mean the
// defaults.
type Config struct {
	// Stream is the JetStream stream's name (default PIGEONHOLE_QUEUES).
	Stream string
	// Replicas is the stream's replication factor (default 1; use 3 in a
	// cluster so that an accepted message survives the loss of a node).
	Replicas int
	// MaxCount is the most messages queued per device (default 10,000).
	// It is checked before each append, so appends in flight at once
	// through all relays can overshoot it by up to one message each.
	MaxCount int
	// SenderMaxCount is the most messages one sending account may have
	// queued for one device (default a tenth of MaxCount): the stream's
	// per-subject limit, exact across relays.
	SenderMaxCount int
	// MaxMessageBytes bounds one stored message (default 1 MiB + 4 KiB).
	MaxMessageBytes int32
	// Lifetime is how long an undelivered message is kept (default 30
	// days).
	Lifetime time.Duration
	// DedupWindow is how long a client message id is remembered (default
	// 24 hours).
	DedupWindow time.Duration
	// MaxBatchesInFlight bounds the atomic batches (appends) this Store
	// has open at once (default 16). JetStream refuses batches past its
	// own limit per stream (jetstream.limits.batch.max_inflight_per_stream,
	// 50 by default) for all relays together: keep relays × this under
	// it, or raise it.
	MaxBatchesInFlight int
	// Timeout bounds one JetStream request when the caller's context has
	// no deadline (default 10 s).
	Timeout time.Duration
}

func (c *Config) setDefaults() {
	if c.Stream == "" {
		c.Stream = "PIGEONHOLE_QUEUES"
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.MaxCount <= 0 {
		c.MaxCount = 10000
	}
	if c.SenderMaxCount <= 0 {
		c.SenderMaxCount = max(1, c.MaxCount/10)
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = 1<<20 + 4<<10
	}
	if c.Lifetime <= 0 {
		c.Lifetime = 30 * 24 * time.Hour
	}
	if c.DedupWindow <= 0 {
		c.DedupWindow = 24 * time.Hour
	}
	if c.MaxBatchesInFlight <= 0 {
		c.MaxBatchesInFlight = 16
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
}
