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
const ALPN = "pigeonhole/1"

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

// AppendFrame appends the framed encoding of m to b.
func AppendFrame(b []byte, m proto.Message) ([]byte, error) {
	size := proto.Size(m)
	if size > MaxFrameSize {
		return b, fmt.Errorf("encode frame: %d bytes: %w", size, ErrFrameTooLarge)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(size))
	b, err := proto.MarshalOptions{}.MarshalAppend(b, m)
	if err != nil {
		return b, fmt.Errorf("encode frame: %w", err)
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

// ReadFrameBytes reads one frame payload of at most max bytes (max <= 0 or
// above MaxFrameSize means MaxFrameSize). The length is checked before any
// allocation. A clean end of stream before the first header byte returns
// io.EOF; a stream that ends inside a frame returns io.ErrUnexpectedEOF.
func ReadFrameBytes(r io.Reader, max int) ([]byte, error) {
	if max <= 0 || max > MaxFrameSize {
		max = MaxFrameSize
	}
	var hdr [frameHeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("read frame header: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if uint64(n) > uint64(max) {
		return nil, fmt.Errorf("read frame: length %d, limit %d: %w", n, max, ErrFrameTooLarge)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read frame body: %w", err)
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
