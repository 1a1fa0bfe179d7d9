package relay

import "time"

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
	// RegisterLimit bounds registrations per source IP address. Default
	// a burst of 10, then one per 6 minutes (10 an hour).
	RegisterLimit Limit
	// FetchLimit bounds key fetches per requesting account. Default a
	// burst of 100, then one per second.
	FetchLimit Limit
	// AuthWait is how long a request that needs authentication waits for
	// the connection's SessionOpen to be verified, and how long a new
	// stream may take to send its first frame. Default 10 s.
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
	// ProvisioningLimit bounds provisioning streams opened per source IP
	// address. Default a burst of 10, then one per 30 s. A connection may
	// have one open at a time.
	ProvisioningLimit Limit
	// MaxMultiDevices caps the device messages in one multi_send (a group
	// send). Default 1,000.
	MaxMultiDevices int
	// MaxBlobBytes is the largest media blob. Default 100 MiB.
	MaxBlobBytes int64
	// GrantLifetime is how long an upload or download grant is valid.
	// Default 10 minutes.
	GrantLifetime time.Duration
	// ShutdownGrace bounds how long a connection stays open once the
	// relay begins to shut down, for the requests in progress to be
	// answered (new ones get SHUTTING_DOWN). Default 5 s.
	ShutdownGrace time.Duration
}

// Limit is a token bucket: Burst requests at once, then one per Every.
type Limit struct {
	Burst int
	Every time.Duration
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
	if c.ProvisioningLimit.Burst <= 0 {
		c.ProvisioningLimit.Burst = 10
	}
	if c.ProvisioningLimit.Every <= 0 {
		c.ProvisioningLimit.Every = 30 * time.Second
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = 5 * time.Second
	}
	return c
}
