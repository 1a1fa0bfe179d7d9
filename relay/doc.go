// Package relay is the Pigeonhole server: the QUIC listener, device
// authentication, the request handlers, the delivery loop on each
// connection's session stream, limits and metrics. It implements
// spec/protocol.md and wires the key directory and the queues together
// through the small interfaces in stores.go.
package relay
