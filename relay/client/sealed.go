package client

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pigeonhole/pigeonhole/spec"
)

// Sealed sender (protocol.md, "Sealed sender"). A device fetches a sender
// certificate on its authenticated connection, sets its account's
// unidentified-access verifier there, and makes sealed sends on another
// Conn that it never authenticates, so the relay cannot tie them to it.

// ServerKey is one of the relay's server certificate keys, which sign
// sender certificates.
type ServerKey struct {
	ID        uint32
	PublicKey ed25519.PublicKey
}

// SenderCertificate is a certificate the relay issued for this device.
type SenderCertificate struct {
	// Raw is the encoded spec.SenderCertificate, as it goes inside a
	// sealed message.
	Raw     []byte
	Expires time.Time
	KeyID   uint32
}

// SenderCertificate asks the relay for a certificate binding this
// (authenticated) device to its identity key, and returns it with the
// server keys the relay lists now (the current one first).
func (c *Conn) SenderCertificate(ctx context.Context) (*SenderCertificate, []ServerKey, error) {
	resp, err := c.roundTrip(ctx, &spec.Request{Body: &spec.Request_SenderCertificate{SenderCertificate: &spec.SenderCertificateRequest{}}})
	if err != nil {
		return nil, nil, fmt.Errorf("sender certificate: %w", err)
	}
	r := resp.GetSenderCertificate()
	cert := r.GetCertificate()
	var body spec.SenderCertificateBody
	if cert == nil || proto.Unmarshal(cert.Certificate, &body) != nil {
		return nil, nil, errors.New("sender certificate: malformed response")
	}
	raw, err := proto.Marshal(cert)
	if err != nil {
		return nil, nil, fmt.Errorf("sender certificate: %w", err)
	}
	var keys []ServerKey
	for _, k := range r.GetServerKeys() {
		if len(k.PublicKey) != ed25519.PublicKeySize {
			return nil, nil, errors.New("sender certificate: malformed server key")
		}
		keys = append(keys, ServerKey{ID: k.KeyId, PublicKey: k.PublicKey})
	}
	return &SenderCertificate{Raw: raw, Expires: time.UnixMilli(body.ExpiresMs), KeyID: body.KeyId}, keys, nil
}

// SetUnidentifiedAccess sets (or, with a new key, rotates) the account's
// unidentified-access key on the relay, which keeps only its verifier,
// and whether anyone may send the account sealed messages without it. A
// nil key removes the verifier.
func (c *Conn) SetUnidentifiedAccess(ctx context.Context, accessKey []byte, allowAnyone bool) error {
	var verifier []byte
	if accessKey != nil {
		var err error
		if verifier, err = spec.AccessVerifier(accessKey); err != nil {
			return fmt.Errorf("set unidentified access: %w", err)
		}
	}
	_, err := c.roundTrip(ctx, &spec.Request{Body: &spec.Request_SetUnidentifiedAccess{
		SetUnidentifiedAccess: &spec.SetUnidentifiedAccessRequest{Verifier: verifier, AllowAnyone: allowAnyone},
	}})
	if err != nil {
		return fmt.Errorf("set unidentified access: %w", err)
	}
	return nil
}

// SealedMessage is one sealed send: a sealed message for every device of
// the recipient, authorised by its access key.
type SealedMessage struct {
	Recipient []byte
	AccessKey []byte // the recipient's, 16 bytes
	// ClientMessageID (16 random bytes) makes a retried send land once;
	// use a fresh one per recipient account, so that the relay cannot
	// tie the sends of one group message together.
	ClientMessageID []byte
	// Devices carry the sealed messages; their Type is 0.
	Devices    []DeviceMessage
	OnlineOnly bool
}

// SealedSend queues m without naming the sender. Make it on a Conn that
// has not authenticated (and never will): the relay needs no identity
// for it, and a connection without a session cannot be tied to a device
// (protocol.md, "What the relay still sees"). A wrong access key fails
// with an *Error whose Code is UNIDENTIFIED_ACCESS.
func (c *Conn) SealedSend(ctx context.Context, m *SealedMessage) (*SendResult, error) {
	sr := &spec.SealedSendRequest{Recipient: m.Recipient, AccessKey: m.AccessKey, ClientMessageId: m.ClientMessageID, OnlineOnly: m.OnlineOnly}
	for _, d := range m.Devices {
		sr.Messages = append(sr.Messages, &spec.DeviceMessage{DeviceId: d.DeviceID, Type: d.Type, Content: d.Content})
	}
	resp, err := c.roundTrip(ctx, &spec.Request{Body: &spec.Request_SealedSend{SealedSend: sr}})
	if err != nil {
		return nil, fmt.Errorf("sealed send: %w", err)
	}
	s := resp.GetSealedSend()
	return &SendResult{TimestampMillis: s.GetTimestampMs(), Duplicate: s.GetDuplicate(), Reached: int(s.GetReached())}, nil
}
