package messenger

import (
	"time"

	"github.com/pigeonhole/pigeonhole/relay/client"
)

// Config says which relay to use and how. Its fields are on the binding
// surface (gomobile): strings, signed integers and booleans only. The
// zero value of every field but RelayAddr is a documented default.
type Config struct {
	// RelayAddr is the relay's host:port (UDP).
	RelayAddr string
	// Fingerprint pins the relay certificate (lowercase hex SHA-256 of
	// its DER encoding, as "pigeonhole serve" prints it). Empty: verify
	// against the system roots and ServerName.
	Fingerprint string
	// ServerName for TLS; empty means the host part of RelayAddr.
	ServerName string
	// Window is how many unacked envelopes the relay may send at once.
	// Zero means 64.
	Window int
	// MinBackoffMillis and MaxBackoffMillis bound the wait between
	// reconnection attempts (exponential, with jitter), and after a
	// handler error before the envelope is tried again. Zero means 100
	// ms and 30 s.
	MinBackoffMillis, MaxBackoffMillis int64
	// PreKeys is how many one-time prekeys the device keeps at the relay:
	// made at registration, refilled when the relay says they run low.
	// Zero means 100 (at most 1,000).
	PreKeys int
	// SignedPreKeyRotationHours is how often the signed prekey is
	// replaced. Zero means 168 (a week).
	SignedPreKeyRotationHours int
	// KeepAliveMillis is the QUIC keep-alive period; a connection silent
	// for three of them is given up (and a new one dialed). Zero means
	// 20 s; it must stay under the relay's idle timeout (60 s by default).
	KeepAliveMillis int64
	// NoDeliveryReceipts stops the automatic delivered receipts for
	// messages the handler took.
	NoDeliveryReceipts bool
	// NoKeySchedule stops Run's signed prekey rotation on schedule, for
	// a program that calls RotateKeysIfDue itself (cmd/pigeon does, at
	// its first drained queue, to say so).
	NoKeySchedule bool
	// DeleteLimitMillis is how long after a message was received a
	// "delete for everyone" of it is still honoured (Delete.Within).
	// Zero means 48 hours, the limit the sender's side keeps too.
	DeleteLimitMillis int64
	// SendOnly opens send-only sessions (window 0): the relay delivers
	// nothing on this Messenger's connection, so another one (another
	// process of the same device, such as a running "pigeon listen")
	// keeps receiving undisturbed. Run and RunUntilDrained refuse with
	// ErrSendOnly.
	SendOnly bool
	// FailFast makes a call that cannot reach the relay fail at once
	// with an *UnreachableError, instead of dialing again with backoff
	// until its context ends: for one-shot programs such as cmd/pigeon,
	// which tell the person at once. Run is not meant for it.
	FailFast bool
}

func (c *Config) window() int {
	if c.SendOnly {
		return 0
	}
	if c.Window <= 0 {
		return 64
	}
	return c.Window
}

func (c *Config) backoff() (lo, hi time.Duration) {
	lo, hi = 100*time.Millisecond, 30*time.Second
	if c.MinBackoffMillis > 0 {
		lo = time.Duration(c.MinBackoffMillis) * time.Millisecond
	}
	if c.MaxBackoffMillis > 0 {
		hi = time.Duration(c.MaxBackoffMillis) * time.Millisecond
	}
	return lo, max(lo, hi)
}

func (c *Config) preKeys() int {
	switch {
	case c.PreKeys <= 0:
		return 100
	case c.PreKeys > 1000:
		return 1000
	}
	return c.PreKeys
}

func (c *Config) rotation() time.Duration {
	if c.SignedPreKeyRotationHours <= 0 {
		return 7 * 24 * time.Hour
	}
	return time.Duration(c.SignedPreKeyRotationHours) * time.Hour
}

func (c *Config) options() *client.Options {
	return &client.Options{Addr: c.RelayAddr, Fingerprint: c.Fingerprint, ServerName: c.ServerName,
		KeepAlive: time.Duration(c.KeepAliveMillis) * time.Millisecond}
}

// DefaultDeleteLimitMillis is the delete limit (48 hours) when
// Config.DeleteLimitMillis is zero.
const DefaultDeleteLimitMillis = 48 * 60 * 60 * 1000

func (c *Config) deleteLimit() time.Duration {
	if c.DeleteLimitMillis <= 0 {
		return DefaultDeleteLimitMillis * time.Millisecond
	}
	return time.Duration(c.DeleteLimitMillis) * time.Millisecond
}
