package messenger

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/spec"
)

// maxStaleRetries bounds how often a send refetches a changed device list.
const maxStaleRetries = 3

// newClientMessageID returns 16 random bytes for a send that is not tied
// to a message id (receipts, typing, group state).
func newClientMessageID() ([]byte, error) {
	id := make([]byte, spec.ClientMessageIDSize)
	if _, err := rand.Read(id); err != nil {
		return nil, fmt.Errorf("messenger: %w", err)
	}
	return id, nil
}

// clientMessageID is the client_message_id of the send of message id to
// account to: derived, so that a Send retried by the app with the same
// Content.ID lands once (protocol.md, "Idempotency"), and distinct per
// recipient, because the relay's key is (sender, device, id) only.
func clientMessageID(kind string, id, to []byte) []byte {
	h := sha256.New()
	h.Write([]byte("pigeonhole client message id v1\x00" + kind + "\x00"))
	h.Write(id)
	h.Write(to)
	return h.Sum(nil)[:spec.ClientMessageIDSize]
}

// delivered is what one pairwise send reached.
type delivered struct {
	devices, reached int
	duplicate        bool
	timestamp        int64
	// sealed says the send went sealed; why, when it did not (to another
	// account), says why.
	sealed bool
	why    string
}

// deliver encrypts plain (an encoded spec.Content, to which it adds this
// account's access key) for every device of account to (this device
// aside) and sends it with client message id cmid, meeting new devices
// and forgetting removed ones when the relay says the list is stale, and
// retrying with the same cmid, so a send lands once.
//
// The send is sealed when to is another account whose access key this
// device holds: on a connection of its own that never authenticates, so
// the relay learns no sender. It is identified otherwise: to this
// account's own devices, with no access key for to, when the relay
// refuses the key (to rotated it; it is forgotten), takes no sealed
// sends, or the request would be over the 16 KiB a connection without a
// session may send. Then the same ciphertexts go identified: they were
// never delivered, so the sessions stay in step.
func (m *Messenger) deliver(ctx context.Context, to, plain, cmid []byte, online bool) (*delivered, error) {
	plain = m.withAccessKey(plain)
	own := slices.Equal(to, m.store.AccountID())
	var key []byte // to's access key while the send is sealed
	why := ""
	if !own {
		if key = m.contactAccessKey(to); key == nil {
			why = ReasonNoAccessKey
		}
	}
	s := &sealer{m: m}
	defer s.close()
	ids, err := m.store.SessionDevices(to)
	if err != nil {
		return nil, fmt.Errorf("messenger: %w", err)
	}
	ids = m.recipients(to, ids)
	for attempt := 0; ; attempt++ {
		if len(ids) == 0 {
			if ids, err = m.startSessions(ctx, to, nil); err != nil {
				return nil, err
			}
		}
		msgs, err := m.store.Encrypt(ctx, to, ids, plain)
		if err != nil {
			return nil, fmt.Errorf("messenger: %w", err)
		}
		var res *client.SendResult
		if key != nil {
			res, err = s.send(ctx, &client.SealedMessage{Recipient: to, AccessKey: key, ClientMessageID: cmid, Devices: msgs, OnlineOnly: online})
			if r := m.unsealable(to, err); r != "" {
				m.log.Info("sending identified", "to", shortID(to), "why", r)
				why, key = r, nil
			}
		}
		if key == nil {
			err = m.conn(ctx, func(c *client.Conn) error {
				var err error
				res, err = c.Send(ctx, &client.Message{Recipient: to, ClientMessageID: cmid, Devices: msgs, OnlineOnly: online})
				return err
			})
		}
		var re *client.Error
		if errors.As(err, &re) && spec.Code(re.Code) == spec.CodeStaleDevices && attempt < maxStaleRetries {
			// The account linked or removed devices: forget the removed
			// ones, meet the new ones, and encrypt again. The refused
			// ciphertexts were never stored.
			if err := m.meetDevices(ctx, to, re.Missing, re.Extra); err != nil {
				return nil, err
			}
			if ids, err = m.store.SessionDevices(to); err != nil {
				return nil, fmt.Errorf("messenger: %w", err)
			}
			ids = m.recipients(to, ids)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("messenger: send: %w", err)
		}
		return &delivered{devices: len(ids), reached: res.Reached, duplicate: res.Duplicate, timestamp: res.TimestampMillis,
			sealed: key != nil, why: why}, nil
	}
}

// meetDevices brings this device's sessions with an account in step with
// what the relay said: it forgets the extra devices and starts sessions
// with the missing ones.
func (m *Messenger) meetDevices(ctx context.Context, to []byte, missing, extra []uint32) error {
	if err := m.store.ForgetDevices(to, extra); err != nil {
		return fmt.Errorf("messenger: %w", err)
	}
	if len(missing) > 0 {
		if _, err := m.startSessions(ctx, to, missing); err != nil {
			return err
		}
	}
	return nil
}

// startSessions fetches an account's keys and starts sessions with the
// named devices (all when nil; never this device itself, which would
// spend one of its own prekeys). It returns the devices a send to the
// account names now. It is the one place where sessions start, so the
// key agreement (X3DH today) changes here only.
func (m *Messenger) startSessions(ctx context.Context, to []byte, only []uint32) ([]uint32, error) {
	var keys *client.Keys
	err := m.conn(ctx, func(c *client.Conn) error {
		var err error
		keys, err = c.FetchKeys(ctx, to)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("messenger: fetch keys: %w", err)
	}
	own := slices.Equal(to, m.store.AccountID())
	if only == nil && own {
		for _, b := range keys.Devices {
			if b.DeviceID != m.store.DeviceID() {
				only = append(only, b.DeviceID)
			}
		}
		if len(only) == 0 {
			return nil, ErrNoRecipients
		}
	}
	if err := m.store.StartSessions(ctx, keys, only); err != nil {
		if errors.Is(err, ErrIdentityChanged) {
			return nil, err
		}
		return nil, fmt.Errorf("messenger: %w", err)
	}
	ids := make([]uint32, len(keys.Devices))
	for i, b := range keys.Devices {
		ids[i] = b.DeviceID
	}
	ids = m.recipients(to, ids)
	if len(ids) == 0 {
		return nil, ErrNoRecipients
	}
	return ids, nil
}

// recipients drops this device from a send to its own account: the relay
// expects a send to one's own account to name only the other devices.
func (m *Messenger) recipients(to []byte, ids []uint32) []uint32 {
	if !slices.Equal(to, m.store.AccountID()) {
		return ids
	}
	self := m.store.DeviceID()
	return slices.DeleteFunc(ids, func(id uint32) bool { return id == self })
}

// hasOtherDevices reports whether this account has devices besides this
// one: known from sessions, else asked of the relay.
func (m *Messenger) hasOtherDevices(ctx context.Context) (bool, error) {
	own := m.store.AccountID()
	ids, err := m.store.SessionDevices(own)
	if err != nil {
		return false, fmt.Errorf("messenger: %w", err)
	}
	if len(m.recipients(own, ids)) > 0 {
		return true, nil
	}
	var n int
	err = m.conn(ctx, func(c *client.Conn) error {
		infos, err := c.ListDevices(ctx)
		n = len(infos)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("messenger: list devices: %w", err)
	}
	return n > 1, nil
}
