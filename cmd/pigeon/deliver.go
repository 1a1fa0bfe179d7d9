package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
	"github.com/pigeonhole/pigeonhole/spec"
)

// deliver encrypts plain (an encoded spec.Content, to which it adds this
// account's access key) for every device of account to (this device
// aside) and sends it, meeting new devices and forgetting removed ones
// when the relay says the list is stale. It returns how many devices it
// went to and, online-only, how many of them were connected to get it.
//
// The send is sealed (protocol.md, "Sealed sends") when to is another
// account whose access key this device holds: on a connection of its own
// that never authenticates, so the relay learns no sender. It is
// identified, over conn, otherwise: to this account's own devices, with
// no access key for to, or when the relay refuses the key (to rotated
// it; it is forgotten) or takes no sealed sends. With -v, deliver says
// which.
func (c *cli) deliver(ctx context.Context, conn *client.Conn, d *e2e.Device, to, plain []byte, online bool) (devices, reached int, err error) {
	msgID := make([]byte, spec.ClientMessageIDSize)
	if _, err := rand.Read(msgID); err != nil {
		return 0, 0, err
	}
	plain = c.withAccessKey(plain)
	own := slices.Equal(to, d.AccountID())
	var key []byte // to's access key while the send is sealed
	why := "no access key yet"
	if !own {
		key = c.contactAccessKey(to)
	}
	s := &sealer{c: c, conn: conn, d: d}
	defer s.close()
	ids, err := d.SessionDevices(to)
	if err != nil {
		return 0, 0, err
	}
	ids = recipients(d, to, ids)
	for attempt := 0; ; attempt++ {
		if len(ids) == 0 {
			if ids, err = startSessions(ctx, conn, d, to, nil); err != nil {
				return 0, 0, err
			}
		}
		msgs, err := d.Encrypt(ctx, to, ids, plain)
		if err != nil {
			return 0, 0, err
		}
		var res *client.SendResult
		if key != nil {
			res, err = s.send(ctx, &client.SealedMessage{Recipient: to, AccessKey: key, ClientMessageID: msgID, Devices: msgs, OnlineOnly: online})
			// When it cannot go sealed, the same ciphertexts go
			// identified: they were never delivered, so the sessions
			// stay in step.
			if r := c.unsealable(to, err); r != "" {
				why, key = r, nil
			}
		}
		if key == nil {
			res, err = conn.Send(ctx, &client.Message{Recipient: to, ClientMessageID: msgID, Devices: msgs, OnlineOnly: online})
		}
		var re *client.Error
		if errors.As(err, &re) && spec.Code(re.Code) == spec.CodeStaleDevices && attempt < maxStaleRetries {
			// The account linked or removed devices: forget the removed
			// ones, meet the new ones, and encrypt again.
			if err := meetDevices(ctx, conn, d, to, re.Missing, re.Extra); err != nil {
				return 0, 0, err
			}
			if ids, err = d.SessionDevices(to); err != nil {
				return 0, 0, err
			}
			ids = recipients(d, to, ids)
			continue
		}
		if err != nil {
			return 0, 0, relayError("send", err)
		}
		if c.verbose && !own {
			who := c.names(d.AccountID()).short(to)
			if key != nil {
				fmt.Fprintf(c.stderr, "pigeon: sent sealed to %s\n", who)
			} else {
				fmt.Fprintf(c.stderr, "pigeon: sent identified to %s (%s)\n", who, why)
			}
		}
		return len(ids), res.Reached, nil
	}
}

// unsealable says why a sealed send to account to that failed with err
// must go identified instead ("" when err is no such reason: nil, or a
// failure of the send itself). When the relay refused to's access key
// (to rotated it), the key is forgotten.
func (c *cli) unsealable(to []byte, err error) string {
	code, refused := relayCode(err)
	switch {
	case errors.Is(err, errTooLargeToSeal) || refused && code == spec.CodeFrameTooLarge:
		return "too large to seal: over 16 KiB"
	case refused && code == spec.CodeUnsupported:
		return "the relay does not take sealed sends"
	case refused && code == spec.CodeUnidentified:
		c.dropContactAccessKey(to)
		return "the relay refused its access key"
	}
	return ""
}

// relayCode is the code of the relay's refusal in err, if it is one.
func relayCode(err error) (spec.Code, bool) {
	var re *client.Error
	if !errors.As(err, &re) {
		return 0, false
	}
	return spec.Code(re.Code), true
}

// sealer makes the sealed sends of one deliver: it seals each device's
// ciphertext with this device's sender certificate (fetched over the
// authenticated conn, cached in the state directory) and sends them on a
// connection dialled for them, which never authenticates.
type sealer struct {
	c      *cli
	conn   *client.Conn // authenticated: the certificate only
	d      *e2e.Device
	sealed *client.Conn // dialled on first use, closed by close
}

// sealedFrameBytes is the largest request a connection without a
// session may send (protocol.md, "Sealed sends": frames are capped at
// 16 KiB), less room for the request id and the frame header.
const sealedFrameBytes = 16<<10 - 32

// errTooLargeToSeal means a send's sealed request would be over
// sealedFrameBytes: it goes identified, on the authenticated connection.
var errTooLargeToSeal = errors.New("too large for a sealed send")

// send seals m's ciphertexts (in place of them) and sends it.
func (s *sealer) send(ctx context.Context, m *client.SealedMessage) (*client.SendResult, error) {
	cert, err := s.c.senderCertificate(ctx, s.conn)
	if err != nil {
		return nil, err
	}
	if m.Devices, err = s.d.Seal(m.Recipient, m.Devices, cert); err != nil {
		return nil, err
	}
	if sealedSize(m) > sealedFrameBytes {
		return nil, errTooLargeToSeal
	}
	if s.sealed == nil {
		opts, err := s.c.options()
		if err != nil {
			return nil, err
		}
		if s.sealed, err = dial(ctx, opts); err != nil {
			return nil, err
		}
	}
	return s.sealed.SealedSend(ctx, m)
}

func (s *sealer) close() {
	if s.sealed != nil {
		s.sealed.Close()
	}
}

// sealedSize is the encoded size of m's sealed_send request.
func sealedSize(m *client.SealedMessage) int {
	sr := &spec.SealedSendRequest{Recipient: m.Recipient, AccessKey: m.AccessKey, ClientMessageId: m.ClientMessageID, OnlineOnly: m.OnlineOnly}
	for _, d := range m.Devices {
		sr.Messages = append(sr.Messages, &spec.DeviceMessage{DeviceId: d.DeviceID, Type: d.Type, Content: d.Content})
	}
	return proto.Size(&spec.Request{Body: &spec.Request_SealedSend{SealedSend: sr}})
}
