package queue

import "time"

// Config sets the queues' limits. Zero values mean the defaults.
type Config struct {
	// MaxCount is the most messages queued per device (default 10,000).
	MaxCount int
	// MaxBytes is the most body bytes queued per device (default 256 MiB).
	MaxBytes int64
	// SenderMaxCount is the most messages one sending account may have
	// queued for one device (default a tenth of MaxCount), so that a
	// stranger cannot fill a device's queue and lock its friends out.
	SenderMaxCount int
	// SenderMaxBytes is the most body bytes one sending account may have
	// queued for one device (default a tenth of MaxBytes).
	SenderMaxBytes int64
	// Lifetime is how long an undelivered message is kept (default 30
	// days). Older messages are not delivered and are deleted in the
	// background.
	Lifetime time.Duration
	// DedupWindow is how long a dedup key is remembered (default 24 hours).
	DedupWindow time.Duration
	// ExpireInterval is how often Run expires old messages and dedup keys
	// (default 1 minute).
	ExpireInterval time.Duration
	// ScrubInterval is how often Run scrubs the database (Store.Scrub), so
	// that an acked or expired message is unrecoverable from the data
	// directory at most this long (plus the scrub's own time) after it
	// was deleted (default 10 minutes).
	ScrubInterval time.Duration
	// Now returns the current time (default time.Now).
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.MaxCount <= 0 {
		c.MaxCount = 10000
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 256 << 20
	}
	if c.SenderMaxCount <= 0 {
		c.SenderMaxCount = max(1, c.MaxCount/10)
	}
	if c.SenderMaxBytes <= 0 {
		c.SenderMaxBytes = max(1, c.MaxBytes/10)
	}
	if c.Lifetime <= 0 {
		c.Lifetime = 30 * 24 * time.Hour
	}
	if c.DedupWindow <= 0 {
		c.DedupWindow = 24 * time.Hour
	}
	if c.ExpireInterval <= 0 {
		c.ExpireInterval = time.Minute
	}
	if c.ScrubInterval <= 0 {
		c.ScrubInterval = 10 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}
