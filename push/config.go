package push

import "time"

// Config configures the push service. The zero value of a duration or
// count means the default in its comment.
type Config struct {
	// Window is the coalescing window: after a push to a device, more
	// mail within Window sends no push, until the device connects.
	// Default 1 minute.
	Window time.Duration
	// QueueSize bounds the pushes waiting for a worker, per provider, and
	// the pushes waiting to be retried; more are dropped and counted.
	// Default 10,000.
	QueueSize int
	// Workers is how many pushes are in flight at once, per provider.
	// Default 8.
	Workers int
	// MaxAttempts bounds the attempts of one push (the first included).
	// Default 5.
	MaxAttempts int
	// RetryFor bounds the time from the first attempt to the last.
	// Default 2 minutes.
	RetryFor time.Duration
	// Backoff is the delay before the first retry; it doubles on each
	// retry, with jitter, unless the provider asks for longer. Default 1 s.
	Backoff time.Duration
	// AttemptTimeout bounds one attempt. Default 15 s.
	AttemptTimeout time.Duration
	// Expiry is how long a provider keeps a push for a device it cannot
	// reach (apns-expiration, the FCM TTL). Default 24 hours, at most 28
	// days (FCM's limit).
	Expiry time.Duration

	// APNs and FCM are the providers; nil leaves one off.
	APNs *APNsConfig
	FCM  *FCMConfig
}

// maxExpiry is FCM's largest TTL; a larger one makes every send invalid.
const maxExpiry = 28 * 24 * time.Hour

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Window, time.Minute)
	def(&c.RetryFor, 2*time.Minute)
	def(&c.Backoff, time.Second)
	def(&c.AttemptTimeout, 15*time.Second)
	def(&c.Expiry, 24*time.Hour)
	if c.QueueSize <= 0 {
		c.QueueSize = 10000
	}
	if c.Workers <= 0 {
		c.Workers = 8
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 5
	}
	return c
}
