package spec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"

	"google.golang.org/protobuf/proto"
)

// fuzzMaxFrame is the limit FuzzReadFrame reads with: small, so the fuzzer
// easily finds lengths on both sides of it.
const fuzzMaxFrame = 1 << 16

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// frameHeader returns a 4-byte big-endian length prefix.
func frameHeader(n uint32) []byte {
	return binary.BigEndian.AppendUint32(nil, n)
}

// addFrameSeeds adds the framed vectors, their payloads and hand-made edge
// cases to f's seed corpus.
func addFrameSeeds(f *testing.F) {
	f.Helper()
	for _, name := range []string{"framed_request", "envelope_frame", "upload_kem_prekeys", "fetch_keys_kem", "prekeys_low"} {
		v := readVector(f, name)
		f.Add(v)                                    // a whole frame
		f.Add(v[4:])                                // the bare payload
		f.Add(v[:len(v)-1])                         // a truncated frame
		f.Add(v[:2])                                // a truncated header
		f.Add(append(append([]byte{}, v...), v...)) // two frames
	}
	f.Add([]byte{})                                               // empty input
	f.Add(frameHeader(0))                                         // an empty message
	f.Add(frameHeader(0xffffffff))                                // a header claiming 4 GiB
	f.Add(append(frameHeader(0xffffffff), 1, 2, 3))               // ... followed by data
	f.Add(append(frameHeader(fuzzMaxFrame), make([]byte, 16)...)) // at the limit, truncated
	f.Add(frameHeader(fuzzMaxFrame + 1))                          // one over the limit
	f.Add(frameHeader(MaxFrameSize + 1))                          // over the package limit
}

func FuzzReadFrame(f *testing.F) {
	addFrameSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		cr := &countingReader{r: bytes.NewReader(data)}
		payload, err := ReadFrameBytes(cr, fuzzMaxFrame)
		if len(payload) > fuzzMaxFrame {
			t.Fatalf("payload of %d bytes, limit %d", len(payload), fuzzMaxFrame)
		}
		if cr.n > len(data) {
			t.Fatalf("read %d bytes from %d", cr.n, len(data))
		}

		if len(data) < 4 {
			switch {
			case len(data) == 0 && err != io.EOF:
				t.Fatalf("empty input: err = %v, want io.EOF", err)
			case len(data) > 0 && !errors.Is(err, io.ErrUnexpectedEOF):
				t.Fatalf("%d-byte input: err = %v, want io.ErrUnexpectedEOF", len(data), err)
			}
			return
		}

		n := binary.BigEndian.Uint32(data)
		switch {
		case n > fuzzMaxFrame:
			if !errors.Is(err, ErrFrameTooLarge) {
				t.Fatalf("length %d over limit: err = %v, want ErrFrameTooLarge", n, err)
			}
			if cr.n > 4 {
				t.Fatalf("length %d over limit: read %d bytes, want at most 4", n, cr.n)
			}
			if payload != nil {
				t.Fatalf("length %d over limit: got a %d-byte payload", n, len(payload))
			}
		case uint64(len(data)) < 4+uint64(n):
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("length %d, %d bytes: err = %v, want io.ErrUnexpectedEOF", n, len(data)-4, err)
			}
		default:
			if err != nil {
				t.Fatalf("length %d, %d bytes: %v", n, len(data)-4, err)
			}
			if !bytes.Equal(payload, data[4:4+n]) {
				t.Fatalf("payload %x, want %x", payload, data[4:4+n])
			}
			if cr.n != 4+int(n) {
				t.Fatalf("read %d bytes, want %d: a reader must not read past the frame", cr.n, 4+n)
			}
		}
	})
}

// fuzzRoundTrip checks that any bytes that decode as an M survive
// AppendFrame and ReadFrame unchanged, and that re-encoding is stable.
func fuzzRoundTrip[M proto.Message](t *testing.T, data []byte, newM func() M) {
	m := newM()
	if err := proto.Unmarshal(data, m); err != nil {
		return
	}
	framed, err := AppendFrame(nil, m)
	if proto.Size(m) > MaxFrameSize {
		if !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("%d-byte message: err = %v, want ErrFrameTooLarge", proto.Size(m), err)
		}
		return
	}
	if err != nil {
		t.Fatalf("AppendFrame: %v", err)
	}
	if got, want := binary.BigEndian.Uint32(framed), uint32(len(framed)-4); got != want {
		t.Fatalf("length prefix %d, payload %d bytes", got, want)
	}

	r := bytes.NewReader(framed)
	got := newM()
	if err := ReadFrame(r, MaxFrameSize, got); err != nil {
		t.Fatalf("ReadFrame of %x: %v", framed, err)
	}
	if r.Len() != 0 {
		t.Fatalf("%d bytes left after the frame", r.Len())
	}
	if !proto.Equal(got, m) {
		t.Fatalf("round trip changed the message\n got: %v\nwant: %v", got, m)
	}

	again, err := AppendFrame(nil, got)
	if err != nil {
		t.Fatalf("AppendFrame of the decoded message: %v", err)
	}
	if !bytes.Equal(again, framed) {
		t.Fatalf("re-encoding differs\nfirst: %x\nagain: %x", framed, again)
	}
}

func FuzzRequestRoundTrip(f *testing.F) {
	addFrameSeeds(f)
	// Hand-made requests: an empty open_session, and the same field twice.
	f.Add([]byte{0x3a, 0x00})
	f.Add([]byte{0x2a, 0x02, 0x0a, 0x00, 0x2a, 0x02, 0x12, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRoundTrip(t, data, func() *Request { return new(Request) })
	})
}

func FuzzResponseRoundTrip(f *testing.F) {
	addFrameSeeds(f)
	// An error with a code, a message and missing devices (packed).
	f.Add([]byte{0x0a, 0x09, 0x08, 0x0b, 0x12, 0x01, 'x', 0x1a, 0x02, 0x01, 0x02})
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRoundTrip(t, data, func() *Response { return new(Response) })
	})
}

func FuzzServerEvent(f *testing.F) {
	addFrameSeeds(f)
	f.Add([]byte{0x0a, 0x04, 0x08, 0x10, 0x10, 0x01}) // ready
	f.Add([]byte{0x2a, 0x00})                         // drained
	f.Add([]byte{0x22, 0x03, 0x12, 0x01, 0xff})       // error with invalid UTF-8
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRoundTrip(t, data, func() *ServerEvent { return new(ServerEvent) })
	})
}

func FuzzClientEvent(f *testing.F) {
	addFrameSeeds(f)
	f.Add([]byte{0x0a, 0x04, 0x0a, 0x02, 0x07, 0x08}) // ack, packed seqs
	f.Add([]byte{0x0a, 0x04, 0x08, 0x07, 0x08, 0x08}) // ack, unpacked seqs
	f.Add([]byte{0x0a, 0x00})                         // empty ack
	f.Add([]byte{0x0a, 0x0b, 0x0a, 0x09, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRoundTrip(t, data, func() *ClientEvent { return new(ClientEvent) })
	})
}

// FuzzReadFrameReserve checks that the payload buffer follows the bytes
// that arrive: whatever the length prefix claims, the bytes reserved are
// at most twice the payload bytes present plus one 4 KiB chunk, and a
// refused reservation ends the read without a payload.
func FuzzReadFrameReserve(f *testing.F) {
	addFrameSeeds(f)
	f.Add(append(frameHeader(MaxFrameSize), make([]byte, 5000)...)) // 4 MiB claimed, 5,000 bytes sent
	f.Add(append(frameHeader(3*frameChunk), make([]byte, 3*frameChunk)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		var reserved int
		payload, err := ReadFrameBytesReserve(bytes.NewReader(data), MaxFrameSize, func(n int) error {
			if n <= 0 {
				t.Fatalf("reserve(%d)", n)
			}
			reserved += n
			return nil
		})
		present := max(len(data)-4, 0)
		if reserved > 2*present+frameChunk {
			t.Fatalf("reserved %d bytes for %d payload bytes present", reserved, present)
		}
		if err == nil {
			if want := binary.BigEndian.Uint32(data); uint32(len(payload)) != want {
				t.Fatalf("payload %d bytes, prefix %d", len(payload), want)
			}
			if len(payload) > 0 && reserved < len(payload) {
				t.Fatalf("reserved %d bytes for a %d-byte payload", reserved, len(payload))
			}
		}

		// With a budget of one chunk, a payload over 4 KiB is refused.
		errBudget := errors.New("budget")
		budget := frameChunk
		payload, err = ReadFrameBytesReserve(bytes.NewReader(data), MaxFrameSize, func(n int) error {
			if n > budget {
				return errBudget
			}
			budget -= n
			return nil
		})
		if len(data) <= 4+frameChunk {
			return
		}
		if n := binary.BigEndian.Uint32(data); n > frameChunk && n <= MaxFrameSize {
			if !errors.Is(err, errBudget) || payload != nil {
				t.Fatalf("payload over the budget: %d bytes, err = %v, want the budget's error", len(payload), err)
			}
		}
	})
}

// TestReadFrameClaimedLengthCommitsNothing is the pre-authentication
// attack on the reader: a peer claims 4 MiB and sends a few bytes. The
// reader must not commit the claimed length.
func TestReadFrameClaimedLengthCommitsNothing(t *testing.T) {
	for _, sent := range []int{0, 10, frameChunk + 1} {
		var reserved int
		data := append(frameHeader(MaxFrameSize), make([]byte, sent)...)
		_, err := ReadFrameBytesReserve(bytes.NewReader(data), MaxFrameSize, func(n int) error {
			reserved += n
			return nil
		})
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("%d bytes sent: err = %v, want io.ErrUnexpectedEOF", sent, err)
		}
		if limit := 2*sent + frameChunk; reserved > limit {
			t.Fatalf("4 MiB claimed, %d bytes sent: %d bytes reserved, want at most %d", sent, reserved, limit)
		}
	}
	// Heap: the same through ReadFrameBytes, measured.
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 64 {
		_, _ = ReadFrameBytes(bytes.NewReader(append(frameHeader(MaxFrameSize), 1, 2, 3)), MaxFrameSize)
	}
	runtime.ReadMemStats(&after)
	// 64 reads of 4 MiB claimed would allocate 256 MiB; chunked reads
	// allocate 64 × 4 KiB plus the inputs.
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 4<<20 {
		t.Fatalf("64 frames claiming 4 MiB with 3 bytes each allocated %d bytes, want under 4 MiB", grew)
	}
}
