package client

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/quic-go/quic-go"

	"github.com/pigeonhole/pigeonhole/spec"
)

// Credentials authenticate a device.
type Credentials struct {
	AccountID []byte
	DeviceID  uint32
	// AuthKey is the device's Ed25519 private key (64 bytes).
	AuthKey []byte
}

// Event kinds returned by Next.
const (
	EventEnvelope   = 1 // Envelope is set
	EventPreKeysLow = 2 // PreKeysRemaining and KemPreKeysRemaining are set: upload more prekeys
	EventDrained    = 3 // everything queued so far has been delivered
	EventDevices    = 4 // DeviceIDs is set: the account's devices changed
)

// Envelope is one message for this device.
type Envelope struct {
	// Seq orders the device's stored envelopes (from 1); 0 marks an
	// online-only envelope, outside that order, which needs no ack.
	Seq             uint64
	Sender          []byte
	SenderDevice    uint32
	TimestampMillis int64
	Type            uint32
	Content         []byte
	ClientMessageID []byte
	// Sealed marks a sealed send: Sender and SenderDevice are empty and
	// Content is a sealed message (e2e opens it).
	Sealed bool
}

// Event is something the relay said on the session stream.
type Event struct {
	Kind             int
	Envelope         *Envelope
	PreKeysRemaining int
	// KemPreKeysRemaining is how many one-time KEM prekeys the device
	// has left (EventPreKeysLow).
	KemPreKeysRemaining int
	// DeviceIDs is the account's device list after a device was linked or
	// revoked (EventDevices).
	DeviceIDs []uint32
}

type sessionStream struct {
	st     *quic.Stream
	window int
	wmu    sync.Mutex // serializes ack writes
}

// Authenticate opens the session stream: it signs this connection's TLS
// exporter value with the device's auth key. window is how many unacked
// envelopes the relay may send at once (0: none, for a send-only
// connection). It returns the window the relay granted.
func (c *Conn) Authenticate(ctx context.Context, cr *Credentials, window int) (int, error) {
	if len(cr.AuthKey) != ed25519.PrivateKeySize {
		return 0, errors.New("authenticate: the auth key must be a 64-byte Ed25519 private key")
	}
	msg, err := spec.AuthMessage(c.exporter, cr.AccountID, cr.DeviceID)
	if err != nil {
		return 0, fmt.Errorf("authenticate: %w", err)
	}
	st, err := c.qc.OpenStreamSync(ctx)
	if err != nil {
		return 0, fmt.Errorf("authenticate: open stream: %w", err)
	}
	open := &spec.SessionOpen{
		AccountId: cr.AccountID,
		DeviceId:  cr.DeviceID,
		Signature: ed25519.Sign(ed25519.PrivateKey(cr.AuthKey), msg),
		Window:    uint32(max(window, 0)),
	}
	if err := spec.WriteFrame(st, &spec.Request{Body: &spec.Request_OpenSession{OpenSession: open}}); err != nil {
		st.CancelRead(0)
		return 0, fmt.Errorf("authenticate: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { st.CancelRead(0) })
	var ev spec.ServerEvent
	err = spec.ReadFrame(st, spec.MaxFrameSize, &ev)
	stop()
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, fmt.Errorf("authenticate: %w", err)
	}
	if e := ev.GetError(); e != nil {
		st.CancelRead(0)
		return 0, fmt.Errorf("authenticate: %w", fromSpec(e))
	}
	ready := ev.GetReady()
	if ready == nil {
		st.CancelRead(0)
		return 0, errors.New("authenticate: relay did not answer with ready")
	}
	c.mu.Lock()
	c.sess = &sessionStream{st: st, window: int(ready.Window)}
	c.mu.Unlock()
	return int(ready.Window), nil
}

func (c *Conn) session() (*sessionStream, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess == nil {
		return nil, ErrNoSession
	}
	return c.sess, nil
}

// Next waits for the next event on the session stream. Envelopes must be
// acked (Ack) once processed; unacked ones come again on the next session.
func (c *Conn) Next(ctx context.Context) (*Event, error) {
	s, err := c.session()
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { s.st.CancelRead(0) })
	defer stop()
	for {
		var ev spec.ServerEvent
		if err := spec.ReadFrame(s.st, spec.MaxFrameSize, &ev); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if errors.Is(err, io.EOF) {
				return nil, ErrSessionClosed
			}
			return nil, fmt.Errorf("session: %w", err)
		}
		switch b := ev.Body.(type) {
		case *spec.ServerEvent_Envelope:
			e := b.Envelope
			return &Event{Kind: EventEnvelope, Envelope: &Envelope{
				Seq: e.Seq, Sender: e.Sender, SenderDevice: e.SenderDevice, TimestampMillis: e.TimestampMs,
				Type: e.Type, Content: e.Content, ClientMessageID: e.ClientMessageId, Sealed: e.Sealed,
			}}, nil
		case *spec.ServerEvent_PrekeysLow:
			return &Event{Kind: EventPreKeysLow, PreKeysRemaining: int(b.PrekeysLow.Remaining),
				KemPreKeysRemaining: int(b.PrekeysLow.KemRemaining)}, nil
		case *spec.ServerEvent_Drained:
			return &Event{Kind: EventDrained}, nil
		case *spec.ServerEvent_DevicesChanged:
			return &Event{Kind: EventDevices, DeviceIDs: b.DevicesChanged.DeviceIds}, nil
		case *spec.ServerEvent_Error:
			return nil, fmt.Errorf("session: %w", fromSpec(b.Error))
		default:
			// Unknown events are skipped so old clients work with newer relays.
		}
	}
}

// Ack tells the relay to delete delivered envelopes. Runs of
// consecutive seqs go as ranges, which the relay resolves against what
// it delivered on this session: an envelope delivered on an earlier
// connection and named in a run comes again (delivery is at least once).
func (c *Conn) Ack(seqs ...uint64) error {
	s, err := c.session()
	if err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := spec.WriteFrame(s.st, &spec.ClientEvent{Body: &spec.ClientEvent_Ack{Ack: ackOf(seqs)}}); err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	return nil
}

// Finish ends the session cleanly: it closes the client's side of the
// session stream and waits until the relay closes its side, which it does
// only after every ack has been made durable. Envelopes still arriving
// meanwhile are discarded (they were not acked and will come again).
func (c *Conn) Finish(ctx context.Context) error {
	s, err := c.session()
	if err != nil {
		return err
	}
	s.wmu.Lock()
	err = s.st.Close()
	s.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("finish: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { s.st.CancelRead(0) })
	defer stop()
	for {
		var ev spec.ServerEvent
		err := spec.ReadFrame(s.st, spec.MaxFrameSize, &ev)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("finish: %w", err)
		}
	}
}
