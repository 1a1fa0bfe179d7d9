package relay

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/pigeonhole/pigeonhole/spec"
)

// TestSealedEnvelopeEncoding checks the hand-built sealed envelope
// decodes, with the generated code, to an Envelope with the sealed flag
// and no sender fields or type.
func TestSealedEnvelopeEncoding(t *testing.T) {
	stored := encodeSealedEnvelope([]byte("sealed bytes"), []byte("0123456789abcdef"))
	fr := appendEnvelopeFrame(nil, 9, 1_700_000_000_123, stored)
	var ev spec.ServerEvent
	if err := proto.Unmarshal(fr[4:], &ev); err != nil {
		t.Fatal(err)
	}
	want := &spec.Envelope{Seq: 9, TimestampMs: 1_700_000_000_123, Content: []byte("sealed bytes"),
		ClientMessageId: []byte("0123456789abcdef"), Sealed: true}
	if !proto.Equal(ev.GetEnvelope(), want) {
		t.Fatalf("decoded %v, want %v", ev.GetEnvelope(), want)
	}
}
