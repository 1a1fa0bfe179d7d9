// Package client is the Go client of the Pigeonhole relay (spec/protocol.md):
// dial with certificate pinning, register, authenticate the connection,
// upload and fetch keys, send, and receive with acks on the session stream.
// Conn is one QUIC connection; Client wraps it with reconnection and
// backoff. The exported surface uses plain types (byte slices, strings,
// integers, structs of them) so that gomobile can bind it; the end-to-end
// layer lives in package e2e beside it.
//
// This package imports only spec and quic-go: never the relay or its stores.
package client
