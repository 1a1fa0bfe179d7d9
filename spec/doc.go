// Package spec is the Pigeonhole wire protocol: the protobuf messages
// (pigeonhole.proto, generated into pigeonhole.pb.go), the length-prefixed
// framing, the bytes a device signs to authenticate, and the table of
// error codes. protocol.md in this directory is the normative description;
// testdata/vectors holds the test vectors the Go tests read.
//
// spec imports nothing else of Pigeonhole, so a client links only this and
// its transport.
package spec
