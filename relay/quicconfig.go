package relay

import (
	"github.com/quic-go/quic-go"
)

// QUIC receive windows of the relay (quic-go's defaults are 512 KiB per
// stream growing to 6 MiB, and 768 KiB per connection growing to 15 MiB).
//
// A stream whose next frame waits for the connection's request byte
// budget (reqbytes.go) or an in-flight slot is not read, and what QUIC
// has received for it stays buffered and counts against the connection's
// window. The connection window therefore starts large enough for every
// stream the client may open to fill its initial window unread, with the
// budget's worth left for the streams being read, so a client's waiting
// streams cannot starve the ones that give the budget back. Stream windows
// start small and grow (quic-go's auto-tuning) on streams that are read
// fast; a stream's window stops at maxStreamWindow.
//
// Windows are credit, not buffers: quic-go allocates only for bytes that
// arrive, so an idle connection costs nothing for them.
const (
	initialStreamWindow = 64 << 10
	maxStreamWindow     = 2 << 20
	maxConnWindow       = 16 << 20
)

// quicConfig is the relay's QUIC listener configuration for cfg.
func quicConfig(cfg Config) *quic.Config {
	connWindow := uint64(cfg.MaxIncomingStreams)*initialStreamWindow + uint64(cfg.ConnRequestBytes)
	return &quic.Config{
		MaxIdleTimeout:                 cfg.IdleTimeout,
		MaxIncomingStreams:             cfg.MaxIncomingStreams,
		MaxIncomingUniStreams:          -1,
		HandshakeIdleTimeout:           cfg.AuthWait,
		InitialStreamReceiveWindow:     initialStreamWindow,
		MaxStreamReceiveWindow:         maxStreamWindow,
		InitialConnectionReceiveWindow: connWindow,
		MaxConnectionReceiveWindow:     max(connWindow, maxConnWindow),
	}
}
