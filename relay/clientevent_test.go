package relay_test

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/quic-go/quic-go"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/pigeonhole/pigeonhole/spec"
)

// rawSession opens d's session stream by hand on a bare connection and
// reads its SessionReady.
func (r *testRelay) rawSession(t *testing.T, d *device, window uint32) (*quic.Conn, *quic.Stream) {
	t.Helper()
	qc, exp := r.rawConn(t)
	msg, err := spec.AuthMessage(exp, d.AccountID, d.DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	st, err := qc.OpenStreamSync(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	open := &spec.Request{Body: &spec.Request_OpenSession{OpenSession: &spec.SessionOpen{
		AccountId: d.AccountID, DeviceId: d.DeviceID, Signature: ed25519.Sign(d.auth, msg), Window: window,
	}}}
	if _, err := st.Write(frame(t, open)); err != nil {
		t.Fatal(err)
	}
	if ev := nextRawEvent(t, st); ev.GetReady() == nil {
		t.Fatalf("first event %v, want ready", ev)
	}
	return qc, st
}

// nextRawEvent reads the next ServerEvent, skipping prekey notices.
func nextRawEvent(t *testing.T, st *quic.Stream) *spec.ServerEvent {
	t.Helper()
	for {
		var ev spec.ServerEvent
		if err := spec.ReadFrame(st, 0, &ev); err != nil {
			t.Fatalf("read event: %v", err)
		}
		if ev.GetPrekeysLow() == nil {
			return &ev
		}
	}
}

// ackPayload returns an encoded ClientEvent acking seq whose payload is
// exactly n bytes: seq repeated, then an unknown field as padding (which
// a decoder must ignore).
func ackPayload(t *testing.T, seq uint64, n int) []byte {
	t.Helper()
	seqs := make([]uint64, 0, n)
	for range n {
		seqs = append(seqs, seq) // seq < 128: one byte each
	}
	for len(seqs) > n-64 {
		b, err := proto.Marshal(&spec.ClientEvent{Body: &spec.ClientEvent_Ack{Ack: &spec.Ack{Seqs: seqs}}})
		if err != nil {
			t.Fatal(err)
		}
		// Pad with field 15 (bytes), tag 1 byte, length 1..3 bytes.
		for pad := 0; pad < 8; pad++ {
			padded := protowire.AppendTag(b, 15, protowire.BytesType)
			padded = protowire.AppendBytes(padded, make([]byte, pad))
			if len(padded) == n {
				return padded
			}
		}
		seqs = seqs[:len(seqs)-1]
	}
	t.Fatalf("cannot build a %d-byte ClientEvent", n)
	return nil
}

func framed(payload []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(payload))), payload...)
}

// waitClosedWith waits for qc to be closed by the relay with code.
func waitClosedWith(t *testing.T, qc *quic.Conn, code quic.ApplicationErrorCode) {
	t.Helper()
	select {
	case <-qc.Context().Done():
	case <-ctxT(t).Done():
		t.Fatalf("connection still open, want it closed with 0x%x", code)
	}
	err := context.Cause(qc.Context())
	var ae *quic.ApplicationError
	if !errors.As(err, &ae) || ae.ErrorCode != code || !ae.Remote {
		t.Fatalf("connection ended with %v, want the relay's close 0x%x", err, code)
	}
}

// TestClientEventLimits pins protocol.md "Acknowledgements": the 64 KiB
// limit is on a ClientEvent's payload (a 65,536-byte payload is read and
// applied), and a frame that breaks the rules closes the connection with
// 0x1 rather than ending delivery in silence.
func TestClientEventLimits(t *testing.T) {
	r := startRelay(t, testConfig())
	alice, bob := r.register(t, 0), r.register(t, 0)
	ac := r.session(t, alice, 0)

	t.Run("64 KiB payload", func(t *testing.T) {
		if _, err := sendText(t, ac, bob, []uint32{1}, "hi"); err != nil {
			t.Fatal(err)
		}
		_, st := r.rawSession(t, bob, 1)
		ev := nextRawEvent(t, st)
		env := ev.GetEnvelope()
		if env == nil {
			t.Fatalf("event %v, want an envelope", ev)
		}
		p := ackPayload(t, env.Seq, 64<<10)
		if _, err := st.Write(framed(p)); err != nil {
			t.Fatal(err)
		}
		// The ack freed the window and emptied the queue: drained.
		if ev := nextRawEvent(t, st); ev.GetDrained() == nil {
			t.Fatalf("event %v after the ack, want drained", ev)
		}
	})

	t.Run("over 64 KiB", func(t *testing.T) {
		qc, st := r.rawSession(t, bob, 1)
		if ev := nextRawEvent(t, st); ev.GetDrained() == nil {
			t.Fatalf("event %v, want drained", ev)
		}
		// Only the length prefix: the relay refuses it before the payload.
		if _, err := st.Write([]byte{0, 1, 0, 1}); err != nil {
			t.Fatal(err)
		}
		waitClosedWith(t, qc, spec.CloseProtocol)
	})

	t.Run("not a ClientEvent", func(t *testing.T) {
		qc, st := r.rawSession(t, bob, 1)
		if _, err := st.Write([]byte{0, 0, 0, 3, 0xff, 0xff, 0xff}); err != nil {
			t.Fatal(err)
		}
		waitClosedWith(t, qc, spec.CloseProtocol)
	})

	t.Run("FIN inside a frame", func(t *testing.T) {
		qc, st := r.rawSession(t, bob, 1)
		if _, err := st.Write([]byte{0, 0, 0, 9, 0x0a}); err != nil {
			t.Fatal(err)
		}
		st.Close()
		waitClosedWith(t, qc, spec.CloseProtocol)
	})

	t.Run("client resets", func(t *testing.T) {
		qc, st := r.rawSession(t, bob, 1)
		if ev := nextRawEvent(t, st); ev.GetDrained() == nil {
			t.Fatalf("event %v, want drained", ev)
		}
		st.CancelWrite(7)
		// The relay resets its side with code 0: the client's read ends.
		var ev spec.ServerEvent
		err := spec.ReadFrame(st, 0, &ev)
		var se *quic.StreamError
		if !errors.As(err, &se) || !se.Remote || se.ErrorCode != 0 {
			t.Fatalf("read after reset: %v (%v), want the relay's RESET_STREAM 0", err, &ev)
		}
		// The connection stays open and authenticated.
		resp := rawExchange(t, qc, frame(t, &spec.Request{Body: &spec.Request_PrekeyStatus{PrekeyStatus: &spec.PreKeyStatusRequest{}}}))
		if resp.Error != nil {
			t.Fatalf("prekey_status after the reset: %v", resp.Error)
		}
	})
}
