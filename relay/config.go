package relay

import (
	"time"

	"github.com/pigeonhole/pigeonhole/spec"
)

// Config holds the relay's limits. The zero value of every field means the
// default given in its comment (and in spec/protocol.md, "Limits").
type Config struct {
	// MaxEnvelopeBytes is the largest ciphertext accepted for one device.
	// Default 256 KiB.
	MaxEnvelopeBytes int
	// MaxWindow caps the unacked envelopes in flight on one session
	// stream. Default 256.
	MaxWindow int
	// MaxSendDevices caps the device messages in one send. Default 64.
	MaxSendDevices int
	// PreKeyLowThreshold: a device is told on its session stream when its
	// one-time prekeys fall below this. Default 10.
	PreKeyLowThreshold int
	// RegisterLimit bounds registrations and device links per source
	// network prefix (IPv4PrefixBits, IPv6PrefixBits). Default a burst of
	// 10, then one per 6 minutes (10 an hour).
	RegisterLimit Limit
	// FetchLimit bounds key fetches per requesting account. Default a
	// burst of 100, then one per second.
	FetchLimit Limit
	// AuthWait is how long a request that needs authentication waits for
	// the connection's SessionOpen to be verified, how long a new stream
	// may take to send its first frame, and how long a connection may
	// stay without authenticating, registering, linking or opening
	// provisioning before it is closed (close code 0x5). Default 10 s.
	AuthWait time.Duration
	// IdleTimeout closes a connection that has been silent this long.
	// Clients keep alive every IdleTimeout/3. Default 60 s.
	IdleTimeout time.Duration
	// MaxIncomingStreams bounds concurrent request streams per
	// connection. Default 100.
	MaxIncomingStreams int64
	// LinkCodeLifetime is how long a link code stays usable. Default 10
	// minutes.
	LinkCodeLifetime time.Duration
	// ProvisioningLifetime bounds how long a provisioning address lives.
	// Default 10 minutes.
	ProvisioningLifetime time.Duration
	// MaxProvisioning bounds the provisioning streams open at once on
	// this relay. Default 10,000.
	MaxProvisioning int
	// ProvisioningLimit bounds provisioning streams opened per source
	// network prefix. Default a burst of 10, then one per 30 s. A
	// connection may have one open at a time.
	ProvisioningLimit Limit
	// MaxMultiDevices caps the device messages in one multi_send (a group
	// send). Default 1,000.
	MaxMultiDevices int
	// MaxBlobBytes is the largest file a media blob may hold, in
	// plaintext bytes (at most spec.MediaMaxSize, 4 GiB): a grant is for
	// up to spec.MediaCiphertextSize(MaxBlobBytes) bytes of ciphertext.
	// Default 100 MiB.
	MaxBlobBytes int64
	// GrantLifetime is how long an upload or download grant is valid.
	// Default 10 minutes.
	GrantLifetime time.Duration
	// IPv4PrefixBits is the IPv4 prefix length that per-source limits
	// are keyed by: addresses in one such block share their buckets.
	// Default 32 (1 to 32).
	IPv4PrefixBits int
	// IPv6PrefixBits is the IPv6 prefix length that per-source limits
	// are keyed by. Default 64, the block one host or site gets (1 to
	// 128).
	IPv6PrefixBits int
	// NewAccountLimit is the relay-wide ceiling on new accounts, from all
	// sources together: it bounds what many prefixes achieve that
	// RegisterLimit grants each. Default a burst of 100, then one per
	// 600 ms (100 a minute).
	NewAccountLimit Limit
	// MaxProvisioningPerSource bounds the provisioning streams open at
	// once from one source network prefix, its share of MaxProvisioning.
	// Default 10.
	MaxProvisioningPerSource int
	// PreKeyClaimLimit bounds the one-time prekeys claimed from one
	// target device by other accounts' key fetches. Past it, bundles
	// still come, without a one-time prekey (X3DH then uses the signed
	// prekey alone). Default a burst of 50, then one per minute.
	PreKeyClaimLimit Limit
	// UnauthFrameBytes caps the first frame of a stream on a connection
	// without a verified session; a larger one waits, unread, for the
	// session and is refused with FRAME_TOO_LARGE if none is verified in
	// AuthWait. Default 16 KiB (the largest register or link_device is
	// under 6 KiB).
	UnauthFrameBytes int
	// UnauthBufferBytes is the relay-wide budget of first-frame bytes
	// buffered for connections without a verified session; one
	// connection may hold at most 4 × UnauthFrameBytes of it. A frame
	// that would pass either is refused with RATE_LIMITED. Default 32 MiB.
	UnauthBufferBytes int64
	// MaxUnauthConnsPerPrefix caps the connections from one network
	// prefix (IPv4PrefixBits, IPv6PrefixBits) that have not yet
	// authenticated, registered, linked or opened provisioning; one more
	// is closed at once with close code 0x6. Default 64.
	MaxUnauthConnsPerPrefix int
	// SendLimit bounds send and multi_send requests per sending account
	// (one token per request, whatever the number of recipients).
	// Default a burst of 300, then one per 50 ms (20 a second).
	SendLimit Limit
	// ConnRequestBytes is how many bytes of request payloads one
	// connection may hold at once: read (or being read) and not yet
	// answered, over all its request streams. Past it the relay reads no
	// further than the next frame's header until an answer is written
	// (QUIC's flow control then holds the client back); a frame larger
	// than the whole budget is read alone. Default 8 MiB.
	ConnRequestBytes int64
	// ShutdownGrace bounds how long a connection stays open once the
	// relay begins to shut down, for the requests in progress to be
	// answered (new ones get SHUTTING_DOWN). Default 5 s.
	ShutdownGrace time.Duration
	// SenderCertLifetime is how long a sender certificate is valid.
	// Default 24 hours.
	SenderCertLifetime time.Duration
	// SealedRecipientLimit bounds the sealed sends accepted for one
	// recipient account, from all senders together. Default a burst of
	// 300, then one per 50 ms (20 a second).
	SealedRecipientLimit Limit
	// SealedKeyLimit bounds the sealed sends accepted with one access key
	// (for an account that lets anyone send, from one source network
	// prefix without the key). Default a burst of 100, then one per
	// 100 ms (10 a second).
	SealedKeyLimit Limit
	// SealedRefusalLimit bounds the sealed sends refused for their access
	// key per source network prefix; past it, sealed sends from there are
	// refused before the key is looked at. Default a burst of 20, then
	// one per 3 s.
	SealedRefusalLimit Limit
}

// Limit is a token bucket: Burst requests at once, then one per Every.
type Limit struct {
	Burst int
	Every time.Duration
}

// orDefault fills a zero Burst or Every with the default.
func (l Limit) orDefault(burst int, every time.Duration) Limit {
	if l.Burst <= 0 {
		l.Burst = burst
	}
	if l.Every <= 0 {
		l.Every = every
	}
	return l
}

func (c Config) withDefaults() Config {
	if c.MaxEnvelopeBytes <= 0 {
		c.MaxEnvelopeBytes = 256 << 10
	}
	if c.MaxWindow <= 0 {
		c.MaxWindow = 256
	}
	if c.MaxSendDevices <= 0 {
		c.MaxSendDevices = 64
	}
	if c.PreKeyLowThreshold <= 0 {
		c.PreKeyLowThreshold = 10
	}
	if c.RegisterLimit.Burst <= 0 {
		c.RegisterLimit.Burst = 10
	}
	if c.RegisterLimit.Every <= 0 {
		c.RegisterLimit.Every = 6 * time.Minute
	}
	if c.FetchLimit.Burst <= 0 {
		c.FetchLimit.Burst = 100
	}
	if c.FetchLimit.Every <= 0 {
		c.FetchLimit.Every = time.Second
	}
	if c.AuthWait <= 0 {
		c.AuthWait = 10 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 60 * time.Second
	}
	if c.MaxIncomingStreams <= 0 {
		c.MaxIncomingStreams = 100
	}
	if c.LinkCodeLifetime <= 0 {
		c.LinkCodeLifetime = 10 * time.Minute
	}
	if c.ProvisioningLifetime <= 0 {
		c.ProvisioningLifetime = 10 * time.Minute
	}
	if c.MaxProvisioning <= 0 {
		c.MaxProvisioning = 10000
	}
	if c.MaxMultiDevices <= 0 {
		c.MaxMultiDevices = 1000
	}
	if c.MaxBlobBytes <= 0 {
		c.MaxBlobBytes = 100 << 20
	}
	if c.GrantLifetime <= 0 {
		c.GrantLifetime = 10 * time.Minute
	}
	if c.UnauthFrameBytes <= 0 {
		c.UnauthFrameBytes = 16 << 10
	}
	c.UnauthFrameBytes = min(c.UnauthFrameBytes, spec.MaxFrameSize)
	if c.UnauthBufferBytes <= 0 {
		c.UnauthBufferBytes = 32 << 20
	}
	if c.MaxUnauthConnsPerPrefix <= 0 {
		c.MaxUnauthConnsPerPrefix = 64
	}
	if c.SendLimit.Burst <= 0 {
		c.SendLimit.Burst = 300
	}
	if c.SendLimit.Every <= 0 {
		c.SendLimit.Every = 50 * time.Millisecond
	}
	if c.ProvisioningLimit.Burst <= 0 {
		c.ProvisioningLimit.Burst = 10
	}
	if c.ProvisioningLimit.Every <= 0 {
		c.ProvisioningLimit.Every = 30 * time.Second
	}
	if c.IPv4PrefixBits <= 0 || c.IPv4PrefixBits > 32 {
		c.IPv4PrefixBits = 32
	}
	if c.IPv6PrefixBits <= 0 || c.IPv6PrefixBits > 128 {
		c.IPv6PrefixBits = 64
	}
	if c.NewAccountLimit.Burst <= 0 {
		c.NewAccountLimit.Burst = 100
	}
	if c.NewAccountLimit.Every <= 0 {
		c.NewAccountLimit.Every = 600 * time.Millisecond
	}
	if c.MaxProvisioningPerSource <= 0 {
		c.MaxProvisioningPerSource = 10
	}
	if c.PreKeyClaimLimit.Burst <= 0 {
		c.PreKeyClaimLimit.Burst = 50
	}
	if c.PreKeyClaimLimit.Every <= 0 {
		c.PreKeyClaimLimit.Every = time.Minute
	}
	if c.ConnRequestBytes <= 0 {
		c.ConnRequestBytes = 8 << 20
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = 5 * time.Second
	}
	if c.SenderCertLifetime <= 0 {
		c.SenderCertLifetime = 24 * time.Hour
	}
	c.SealedRecipientLimit = c.SealedRecipientLimit.orDefault(300, 50*time.Millisecond)
	c.SealedKeyLimit = c.SealedKeyLimit.orDefault(100, 100*time.Millisecond)
	c.SealedRefusalLimit = c.SealedRefusalLimit.orDefault(20, 3*time.Second)
	return c
}
