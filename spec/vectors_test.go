package spec

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
)

// The fixed inputs of the vectors in testdata/vectors (see the .txt file
// next to each .hex file).

// vecBytes returns n bytes start, start+1, ...
func vecBytes(start byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

var (
	vecExporter  = vecBytes(0x00, 32)
	vecAccountID = vecBytes(0x01, 16)
	vecMessageID = vecBytes(0xa0, 16)
	vecAuthKey   = vecBytes(0x40, 32)
	vecContent   = []byte("ciphertext")
)

func vecRequest() *Request {
	return &Request{Body: &Request_Send{Send: &SendRequest{
		Recipient:       vecAccountID,
		ClientMessageId: vecMessageID,
		Messages: []*DeviceMessage{
			{DeviceId: 1, Type: 3, Content: vecContent},
		},
	}}}
}

func vecServerEvent() *ServerEvent {
	return &ServerEvent{Body: &ServerEvent_Envelope{Envelope: &Envelope{
		Seq:             7,
		Sender:          vecAccountID,
		SenderDevice:    2,
		TimestampMs:     1700000000000,
		Type:            3,
		Content:         vecContent,
		ClientMessageId: vecMessageID,
	}}}
}

// readVector returns the decoded bytes of testdata/vectors/name.hex
// (name without the extension). Whitespace in the file is ignored.
func readVector(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "vectors", name+".hex"))
	if err != nil {
		t.Fatalf("read vector %s: %v", name, err)
	}
	s := strings.Join(strings.Fields(string(raw)), "")
	if s != strings.ToLower(s) {
		t.Fatalf("vector %s: hex must be lowercase", name)
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("vector %s: %v", name, err)
	}
	return b
}

func checkVector(t *testing.T, name string, got []byte) {
	t.Helper()
	want := readVector(t, name)
	if !bytes.Equal(got, want) {
		t.Errorf("%s mismatch\n got: %x\nwant: %x", name, got, want)
	}
}

func TestVectorFramedRequest(t *testing.T) {
	got, err := AppendFrame(nil, vecRequest())
	if err != nil {
		t.Fatal(err)
	}
	checkVector(t, "framed_request", got)

	// WriteFrame must produce the same bytes.
	var buf bytes.Buffer
	if err := WriteFrame(&buf, vecRequest()); err != nil {
		t.Fatal(err)
	}
	checkVector(t, "framed_request", buf.Bytes())

	// AppendFrame appends: existing bytes are kept.
	prefix := []byte{0xde, 0xad}
	got, err = AppendFrame(append([]byte(nil), prefix...), vecRequest())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(got, prefix) {
		t.Fatalf("AppendFrame lost the prefix: %x", got)
	}
	checkVector(t, "framed_request", got[len(prefix):])

	// Decode the vector and check every field.
	v := readVector(t, "framed_request")
	r := bytes.NewReader(v)
	var req Request
	if err := ReadFrame(r, MaxFrameSize, &req); err != nil {
		t.Fatal(err)
	}
	if r.Len() != 0 {
		t.Errorf("%d bytes left after the frame", r.Len())
	}
	send := req.GetSend()
	if send == nil {
		t.Fatalf("body is %T, want send", req.GetBody())
	}
	if !bytes.Equal(send.GetRecipient(), vecAccountID) {
		t.Errorf("recipient = %x", send.GetRecipient())
	}
	if !bytes.Equal(send.GetClientMessageId(), vecMessageID) {
		t.Errorf("client_message_id = %x", send.GetClientMessageId())
	}
	if n := len(send.GetMessages()); n != 1 {
		t.Fatalf("%d device messages, want 1", n)
	}
	dm := send.GetMessages()[0]
	if dm.GetDeviceId() != 1 || dm.GetType() != 3 || string(dm.GetContent()) != "ciphertext" {
		t.Errorf("device message = %v", dm)
	}
	if !proto.Equal(&req, vecRequest()) {
		t.Errorf("decoded %v, want %v", &req, vecRequest())
	}
	if _, err := ReadFrameBytes(r, 0); err != io.EOF {
		t.Errorf("read after the only frame: %v, want io.EOF", err)
	}
}

func TestVectorEnvelopeFrame(t *testing.T) {
	got, err := AppendFrame(nil, vecServerEvent())
	if err != nil {
		t.Fatal(err)
	}
	checkVector(t, "envelope_frame", got)

	v := readVector(t, "envelope_frame")
	r := bytes.NewReader(v)
	var ev ServerEvent
	if err := ReadFrame(r, MaxFrameSize, &ev); err != nil {
		t.Fatal(err)
	}
	if r.Len() != 0 {
		t.Errorf("%d bytes left after the frame", r.Len())
	}
	env := ev.GetEnvelope()
	if env == nil {
		t.Fatalf("body is %T, want envelope", ev.GetBody())
	}
	if env.GetSeq() != 7 {
		t.Errorf("seq = %d", env.GetSeq())
	}
	if !bytes.Equal(env.GetSender(), vecAccountID) {
		t.Errorf("sender = %x", env.GetSender())
	}
	if env.GetSenderDevice() != 2 {
		t.Errorf("sender_device = %d", env.GetSenderDevice())
	}
	if env.GetTimestampMs() != 1700000000000 {
		t.Errorf("timestamp_ms = %d", env.GetTimestampMs())
	}
	if env.GetType() != 3 {
		t.Errorf("type = %d", env.GetType())
	}
	if string(env.GetContent()) != "ciphertext" {
		t.Errorf("content = %q", env.GetContent())
	}
	if !bytes.Equal(env.GetClientMessageId(), vecMessageID) {
		t.Errorf("client_message_id = %x", env.GetClientMessageId())
	}
	if !proto.Equal(&ev, vecServerEvent()) {
		t.Errorf("decoded %v, want %v", &ev, vecServerEvent())
	}
}

// TestVectorEnvelopeFieldOrder checks that a decoder accepts the envelope
// fields in an order other than field-number order, as some encoders write
// them: the vector is canonical, not the only valid encoding.
func TestVectorEnvelopeFieldOrder(t *testing.T) {
	v := readVector(t, "envelope_frame")
	// v = header(4) || 0x12 len(1) || envelope fields; reverse the fields.
	inner := v[6:]
	var fields [][]byte
	for len(inner) > 0 {
		n := vecFieldLen(t, inner)
		fields = append(fields, inner[:n])
		inner = inner[n:]
	}
	if len(fields) != 7 {
		t.Fatalf("parsed %d envelope fields, want 7", len(fields))
	}
	var body []byte
	for i := len(fields) - 1; i >= 0; i-- {
		body = append(body, fields[i]...)
	}
	payload := append([]byte{0x12, byte(len(body))}, body...)
	frame := append([]byte{0, 0, 0, byte(len(payload))}, payload...)
	if bytes.Equal(frame, v) {
		t.Fatal("reordered encoding equals the canonical one")
	}
	var ev ServerEvent
	if err := ReadFrame(bytes.NewReader(frame), MaxFrameSize, &ev); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&ev, vecServerEvent()) {
		t.Errorf("decoded %v, want %v", &ev, vecServerEvent())
	}
}

// vecFieldLen returns the length of the first protobuf field in b (varint
// or length-delimited, tags and lengths below 128 only).
func vecFieldLen(t *testing.T, b []byte) int {
	t.Helper()
	switch b[0] & 7 {
	case 0:
		for i := 1; i < len(b); i++ {
			if b[i]&0x80 == 0 {
				return i + 1
			}
		}
	case 2:
		if len(b) >= 2 && b[1] < 0x80 && 2+int(b[1]) <= len(b) {
			return 2 + int(b[1])
		}
	}
	t.Fatalf("cannot parse field at %x", b)
	return 0
}

func TestVectorAuthMessage(t *testing.T) {
	got, err := AuthMessage(vecExporter, vecAccountID, 1)
	if err != nil {
		t.Fatal(err)
	}
	checkVector(t, "auth_message", got)
	if want := len("pigeonhole/1 device auth") + 1 + ExporterLength + AccountIDSize + 4; len(got) != want {
		t.Errorf("len = %d, want %d", len(got), want)
	}
	if _, err := AuthMessage(vecExporter[:31], vecAccountID, 1); err == nil {
		t.Error("31-byte exporter accepted")
	}
	if _, err := AuthMessage(vecExporter, vecAccountID[:15], 1); err == nil {
		t.Error("15-byte account id accepted")
	}
}

func TestVectorRegisterProof(t *testing.T) {
	got, err := RegisterProof(vecExporter, vecAuthKey)
	if err != nil {
		t.Fatal(err)
	}
	checkVector(t, "register_proof", got)
	if want := len("pigeonhole/1 register") + 1 + ExporterLength + AuthKeySize; len(got) != want {
		t.Errorf("len = %d, want %d", len(got), want)
	}
	if _, err := RegisterProof(vecExporter[:31], vecAuthKey); err == nil {
		t.Error("31-byte exporter accepted")
	}
	if _, err := RegisterProof(vecExporter, vecAuthKey[:31]); err == nil {
		t.Error("31-byte auth key accepted")
	}
}

// TestVectorAuthDomainSeparation checks that the two signed messages can
// never be equal: their context strings differ in the first bytes.
func TestVectorAuthDomainSeparation(t *testing.T) {
	a := readVector(t, "auth_message")
	r := readVector(t, "register_proof")
	if bytes.HasPrefix(a, r[:22]) || bytes.HasPrefix(r, a[:25]) {
		t.Error("auth message and register proof share a context prefix")
	}
}

// TestVectorFramesTruncated checks that every proper prefix of a framed
// vector fails to read: io.EOF for an empty stream, an io.ErrUnexpectedEOF
// error otherwise.
func TestVectorFramesTruncated(t *testing.T) {
	for _, name := range []string{"framed_request", "envelope_frame"} {
		v := readVector(t, name)
		for i := 0; i < len(v); i++ {
			_, err := ReadFrameBytes(bytes.NewReader(v[:i]), 0)
			switch {
			case i == 0 && err != io.EOF:
				t.Errorf("%s[:0]: err = %v, want io.EOF", name, err)
			case i > 0 && !errors.Is(err, io.ErrUnexpectedEOF):
				t.Errorf("%s[:%d]: err = %v, want io.ErrUnexpectedEOF", name, i, err)
			}
		}
		// A limit one byte below the payload length refuses the frame.
		_, err := ReadFrameBytes(bytes.NewReader(v), len(v)-5)
		if !errors.Is(err, ErrFrameTooLarge) {
			t.Errorf("%s with limit %d: err = %v, want ErrFrameTooLarge", name, len(v)-5, err)
		}
		// The exact payload length is allowed.
		if _, err := ReadFrameBytes(bytes.NewReader(v), len(v)-4); err != nil {
			t.Errorf("%s with limit %d: %v", name, len(v)-4, err)
		}
	}
}

// TestVectorRequestStream checks protocol 2's ids: two pipelined requests
// and the answer to the second, byte for byte and decoded.
func TestVectorRequestStream(t *testing.T) {
	status := func(id uint64) *Request {
		return &Request{Id: id, Body: &Request_PrekeyStatus{PrekeyStatus: &PreKeyStatusRequest{}}}
	}
	var got []byte
	for _, id := range []uint64{1, 300} {
		var err error
		if got, err = AppendFrame(got, status(id)); err != nil {
			t.Fatal(err)
		}
	}
	checkVector(t, "request_stream", got)
	r := bytes.NewReader(readVector(t, "request_stream"))
	for _, id := range []uint64{1, 300} {
		var req Request
		if err := ReadFrame(r, MaxFrameSize, &req); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(&req, status(id)) {
			t.Errorf("decoded %v, want id %d with prekey_status", &req, id)
		}
	}
	if r.Len() != 0 {
		t.Errorf("%d bytes left after the two frames", r.Len())
	}

	resp := &Response{Id: 300, Body: &Response_PrekeyStatus{PrekeyStatus: &PreKeyStatusResponse{Stored: 7}}}
	got, err := AppendFrame(nil, resp)
	if err != nil {
		t.Fatal(err)
	}
	checkVector(t, "response_id", got)
	var dec Response
	if err := ReadFrame(bytes.NewReader(readVector(t, "response_id")), MaxFrameSize, &dec); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&dec, resp) {
		t.Errorf("decoded %v, want %v", &dec, resp)
	}
}
