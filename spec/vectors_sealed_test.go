package spec

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"
)

// TestVectorSealedMessages checks sealed_send.hex (a framed sealed_send
// request) and sealed_envelope.hex (the envelope its recipient gets: no
// sender, sender device or type, sealed set), protocol.md "Sealed sends".
func TestVectorSealedMessages(t *testing.T) {
	send := &Request{Id: 8, Body: &Request_SealedSend{SealedSend: &SealedSendRequest{
		Recipient:       vecAccountID,
		AccessKey:       vecBytes(0x60, 16),
		ClientMessageId: vecMessageID,
		Messages:        []*DeviceMessage{{DeviceId: 1, Content: []byte("sealed message")}},
	}}}
	env := &ServerEvent{Body: &ServerEvent_Envelope{Envelope: &Envelope{
		Seq: 8, TimestampMs: 1700000000000, Content: []byte("sealed message"),
		ClientMessageId: vecMessageID, Sealed: true,
	}}}
	for name, m := range map[string]proto.Message{"sealed_send": send, "sealed_envelope": env} {
		got, err := AppendFrame(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		checkVector(t, name, got)
	}
	var ev ServerEvent
	if err := ReadFrame(bytes.NewReader(readVector(t, "sealed_envelope")), MaxFrameSize, &ev); err != nil {
		t.Fatal(err)
	}
	e := ev.GetEnvelope()
	if !e.GetSealed() || len(e.GetSender()) != 0 || e.GetSenderDevice() != 0 || e.GetType() != 0 {
		t.Errorf("sealed_envelope decoded to %v: want sealed, with no sender, sender device or type", e)
	}
}
