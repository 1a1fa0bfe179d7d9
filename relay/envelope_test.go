package relay

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/pigeonhole/pigeonhole/keys"
	"github.com/pigeonhole/pigeonhole/spec"
)

// TestEnvelopeEncoding checks the hand-built delivery frame decodes, with
// the generated code, to the Envelope it stands for.
func TestEnvelopeEncoding(t *testing.T) {
	var sender keys.AccountID
	for i := range sender {
		sender[i] = byte(i + 1)
	}
	for _, typ := range []uint32{0, 2, 3} {
		stored := encodeStoredEnvelope(sender, 7, typ, []byte("opaque ciphertext"), []byte("0123456789abcdef"))
		fr := appendEnvelopeFrame([]byte("prefix"), 1<<40, 1_700_000_000_123, stored)
		fr = fr[len("prefix"):]
		if n := binary.BigEndian.Uint32(fr); int(n) != len(fr)-4 {
			t.Fatalf("length prefix %d, frame %d", n, len(fr)-4)
		}
		var ev spec.ServerEvent
		if err := proto.Unmarshal(fr[4:], &ev); err != nil {
			t.Fatal(err)
		}
		want := &spec.Envelope{
			Seq: 1 << 40, Sender: sender[:], SenderDevice: 7, TimestampMs: 1_700_000_000_123,
			Type: typ, Content: []byte("opaque ciphertext"), ClientMessageId: []byte("0123456789abcdef"),
		}
		if !proto.Equal(ev.GetEnvelope(), want) {
			t.Fatalf("decoded %v, want %v", ev.GetEnvelope(), want)
		}
	}
}

func TestDiffDevices(t *testing.T) {
	for _, c := range []struct {
		have, named, missing, extra []uint32
	}{
		{[]uint32{1, 2, 3}, []uint32{1, 2, 3}, nil, nil},
		{[]uint32{1, 2, 3}, []uint32{2}, []uint32{1, 3}, nil},
		{[]uint32{1}, []uint32{1, 4, 5}, nil, []uint32{4, 5}},
		{[]uint32{2, 4}, []uint32{1, 3}, []uint32{2, 4}, []uint32{1, 3}},
		{nil, []uint32{1}, nil, []uint32{1}},
	} {
		m, e := diffDevices(c.have, c.named)
		if !equal(m, c.missing) || !equal(e, c.extra) {
			t.Errorf("diff(%v, %v) = %v, %v; want %v, %v", c.have, c.named, m, e, c.missing, c.extra)
		}
	}
}

func equal(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestEnvelopeMatchesSpecVector builds the envelope of
// spec/testdata/vectors/envelope_frame.txt the relay's way and checks it
// decodes to the same message as the spec's vector.
func TestEnvelopeMatchesSpecVector(t *testing.T) {
	raw, err := os.ReadFile("../spec/testdata/vectors/envelope_frame.hex")
	if err != nil {
		t.Fatal(err)
	}
	vec, err := hex.DecodeString(strings.Join(strings.Fields(string(raw)), ""))
	if err != nil {
		t.Fatal(err)
	}
	var sender keys.AccountID
	msgID := make([]byte, 16)
	for i := range sender {
		sender[i] = byte(i + 1)
		msgID[i] = 0xa0 + byte(i)
	}
	fr := appendEnvelopeFrame(nil, 7, 1_700_000_000_000, encodeStoredEnvelope(sender, 2, 3, []byte("ciphertext"), msgID))
	if len(fr) != len(vec) {
		t.Fatalf("relay frame is %d bytes, vector %d", len(fr), len(vec))
	}
	var got, want spec.ServerEvent
	if err := spec.ReadFrame(bytes.NewReader(fr), 0, &got); err != nil {
		t.Fatal(err)
	}
	if err := spec.ReadFrame(bytes.NewReader(vec), 0, &want); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&got, &want) {
		t.Fatalf("relay envelope %v, vector %v", &got, &want)
	}
}

// TestSealedEnvelopeMatchesSpecVector: a sealed send's stored envelope,
// framed the relay's way, is byte for byte
// spec/testdata/vectors/sealed_envelope.hex (no sender fields, sealed set).
func TestSealedEnvelopeMatchesSpecVector(t *testing.T) {
	raw, err := os.ReadFile("../spec/testdata/vectors/sealed_envelope.hex")
	if err != nil {
		t.Fatal(err)
	}
	vec, err := hex.DecodeString(strings.Join(strings.Fields(string(raw)), ""))
	if err != nil {
		t.Fatal(err)
	}
	msgID := make([]byte, 16)
	for i := range msgID {
		msgID[i] = 0xa0 + byte(i)
	}
	fr := appendEnvelopeFrame(nil, 8, 1_700_000_000_000, encodeSealedEnvelope([]byte("sealed message"), msgID))
	if !bytes.Equal(fr, vec) {
		t.Fatalf("relay frame\n%x\nvector\n%x", fr, vec)
	}
}
