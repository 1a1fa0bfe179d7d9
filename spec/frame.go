package spec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/proto"
)

// ALPN is the TLS application protocol a client offers and a relay
// requires (protocol.md, "Transport").
const ALPN = "pigeonhole/2"

// MaxRequestsInFlight is how many requests one connection may have read
// and not yet answered, over all its request streams (protocol.md,
// "Request streams"). A relay reads no further Request frame while a
// connection is at the limit, so a client that writes more only waits.
const MaxRequestsInFlight = 64

// MaxFrameSize is the largest frame payload either side may send: 4 MiB.
// A reader refuses a larger length prefix before allocating anything.
const MaxFrameSize = 4 << 20

// Frame layout (protocol.md, "Framing"):
//
//	+----------------------+---------------------------+
//	| length: uint32, BE   | payload: length bytes     |
//	+----------------------+---------------------------+
//
// The payload is one protobuf message. A length of 0 is a valid, empty
// message.
const frameHeaderSize = 4

// ErrFrameTooLarge is returned when a length prefix exceeds the limit the
// reader was given.
var ErrFrameTooLarge = errors.New("frame too large")

// AppendFrame appends the framed encoding of m to b. On an error b is
// returned as it was.
func AppendFrame(b []byte, m proto.Message) ([]byte, error) {
	size := proto.Size(m)
	if size > MaxFrameSize {
		return b, fmt.Errorf("encode frame: %d bytes: %w", size, ErrFrameTooLarge)
	}
	start := len(b)
	b = binary.BigEndian.AppendUint32(b, uint32(size))
	b, err := proto.MarshalOptions{}.MarshalAppend(b, m)
	if err != nil {
		// Nothing of a frame that failed stays in b.
		return b[:start], fmt.Errorf("encode frame: %w", err)
	}
	return b, nil
}

// WriteFrame writes m as one frame.
func WriteFrame(w io.Writer, m proto.Message) error {
	b, err := AppendFrame(make([]byte, 0, frameHeaderSize+proto.Size(m)), m)
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write frame: %w", err)
	}
	return nil
}

// frameChunk is the first buffer a reader commits for a payload, and the
// step it grows by at first: memory follows the bytes that arrive, never
// the length a peer claims.
const frameChunk = 4 << 10

// ReadFrameBytes reads one frame payload of at most max bytes (max <= 0 or
// above MaxFrameSize means MaxFrameSize). The length is checked before any
// allocation, and the buffer grows only as payload bytes arrive (see
// ReadFrameBytesReserve). A clean end of stream before the first header
// byte returns io.EOF; a stream that ends inside a frame returns
// io.ErrUnexpectedEOF.
func ReadFrameBytes(r io.Reader, max int) ([]byte, error) {
	return ReadFrameBytesReserve(r, max, nil)
}

// ReadFrameBytesReserve is ReadFrameBytes with a memory budget: before the
// payload buffer grows by n bytes it calls reserve(n), and an error from
// reserve ends the read with that error (wrapped). The buffer starts at
// 4 KiB (or the payload's length, if smaller) and at most doubles each
// time it fills, so the bytes committed are never more than twice the
// bytes received plus 4 KiB, whatever the length prefix says. A frame
// with an empty payload reserves nothing. reserve may be nil. The caller
// gives back what it reserved once it drops the payload.
func ReadFrameBytesReserve(r io.Reader, max int, reserve func(n int) error) ([]byte, error) {
	n, err := ReadFrameHeader(r, max)
	if err != nil {
		return nil, err
	}
	return ReadFramePayload(r, n, reserve)
}

// ReadFrameHeader reads a frame's 4-byte length prefix and checks it
// against max (max <= 0 or above MaxFrameSize means MaxFrameSize). A clean
// end of stream before the first byte returns io.EOF.
func ReadFrameHeader(r io.Reader, max int) (int, error) {
	if max <= 0 || max > MaxFrameSize {
		max = MaxFrameSize
	}
	var hdr [frameHeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return 0, io.EOF
		}
		return 0, fmt.Errorf("read frame header: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if uint64(n) > uint64(max) {
		return 0, fmt.Errorf("read frame: length %d, limit %d: %w", n, max, ErrFrameTooLarge)
	}
	return int(n), nil
}

// ReadFramePayload reads the n-byte payload that follows a header read
// with ReadFrameHeader (n must be at most MaxFrameSize), growing its
// buffer as ReadFrameBytesReserve does.
func ReadFramePayload(r io.Reader, n int, reserve func(n int) error) ([]byte, error) {
	if n < 0 || n > MaxFrameSize {
		return nil, fmt.Errorf("read frame: length %d, limit %d: %w", n, MaxFrameSize, ErrFrameTooLarge)
	}
	var buf []byte
	for len(buf) < n {
		if len(buf) == cap(buf) {
			size := min(n, max(frameChunk, 2*cap(buf)))
			if reserve != nil {
				if err := reserve(size - cap(buf)); err != nil {
					return nil, fmt.Errorf("read frame body: %w", err)
				}
			}
			grown := make([]byte, len(buf), size)
			copy(grown, buf)
			buf = grown
		}
		m, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err != nil && len(buf) < n {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("read frame body: %w", err)
		}
	}
	if buf == nil {
		buf = []byte{}
	}
	return buf, nil
}

// ReadFrame reads one frame of at most max bytes and decodes it into m.
func ReadFrame(r io.Reader, max int, m proto.Message) error {
	b, err := ReadFrameBytes(r, max)
	if err != nil {
		return err
	}
	if err := proto.Unmarshal(b, m); err != nil {
		return fmt.Errorf("decode frame: %w", err)
	}
	return nil
}
