package messenger

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pigeonhole/pigeonhole/spec"
)

// MessageIDSize is the length of a message id (Content.id in
// content.proto): chosen by the sender, named by receipts.
const MessageIDSize = 8

// Content is what a message says.
type Content struct {
	// Text is the message's text; it must not be empty.
	Text string
	// ID names the message (MessageIDSize bytes). Empty: a new random
	// one. Sending again with the ID of a send that failed (a timeout, a
	// lost connection) is safe: the relay takes each recipient's copy
	// once.
	ID []byte
}

// SendResult says what a send reached.
type SendResult struct {
	// ID is the message's id, for receipts.
	ID []byte
	// Devices is how many devices it went to (this device aside).
	Devices int
	// Reached is, for an online-only send (typing), how many of them
	// were connected to get it.
	Reached int
	// Duplicate is true when the relay had taken this message before (a
	// retried send): it was not stored twice.
	Duplicate bool
	// TimestampMillis is when the relay took it (Unix milliseconds).
	TimestampMillis int64
	// OwnCopyFailed is true when the message went out but the copy for
	// this account's other devices did not (they will not show it);
	// OwnCopyError says why.
	OwnCopyFailed bool
	OwnCopyError  string
	// Sealed is true when a send to another account went sealed (the
	// relay learned no sender); IdentifiedReason says why one did not
	// (ReasonNoAccessKey, ReasonTooLarge, ReasonUnsupported,
	// ReasonKeyRefused). Both are unset for a send to this account.
	Sealed           bool
	IdentifiedReason string
	// SealedAccounts and IdentifiedAccounts count, for a group send, the
	// other member accounts it went to sealed and identified (this
	// account's own devices are in neither); IdentifiedReason then lists
	// the reasons, each once, separated by "; ".
	SealedAccounts, IdentifiedAccounts int
}

func checkAccount(a []byte) error {
	if len(a) != 16 {
		return ErrBadAccount
	}
	return nil
}

func messageID(c *Content) ([]byte, error) {
	if len(c.ID) == 0 {
		id := make([]byte, MessageIDSize)
		if _, err := rand.Read(id); err != nil {
			return nil, fmt.Errorf("messenger: %w", err)
		}
		return id, nil
	}
	if len(c.ID) != MessageIDSize {
		return nil, fmt.Errorf("messenger: a message id is %d bytes", MessageIDSize)
	}
	return slices.Clone(c.ID), nil
}

// encode stamps c with the time and encodes it.
func encode(c *spec.Content) []byte {
	if c.SentAtMs == 0 {
		c.SentAtMs = time.Now().UnixMilli()
	}
	b, err := proto.Marshal(c)
	if err != nil {
		panic(fmt.Sprintf("encode content: %v", err)) // cannot fail for a Content built here
	}
	return b
}

// Send sends c to every device of account to, end to end: it starts
// sessions with devices it has none with, follows the relay when the
// account's device list changed (STALE_DEVICES: meets new devices,
// forgets removed ones, sends again with the same client message id),
// and sends a copy to this account's other devices. It returns once the
// relay has stored the message durably for every device.
func (m *Messenger) Send(ctx context.Context, to []byte, c *Content) (*SendResult, error) {
	if err := checkAccount(to); err != nil {
		return nil, err
	}
	if c == nil || c.Text == "" {
		return nil, ErrEmpty
	}
	id, err := messageID(c)
	if err != nil {
		return nil, err
	}
	content := &spec.Content{Id: id, Body: &spec.Content_Text{Text: &spec.Text{Body: c.Text}}}
	d, err := m.deliver(ctx, to, encode(content), clientMessageID("text", id, to), false)
	if err != nil {
		return nil, err
	}
	res := &SendResult{ID: id, Devices: d.devices, Duplicate: d.duplicate, TimestampMillis: d.timestamp,
		Sealed: d.sealed, IdentifiedReason: d.why}
	copyOf := &spec.Content{SentAtMs: content.SentAtMs, Body: &spec.Content_Sent{Sent: &spec.SentTranscript{
		Destination: to, Text: &spec.Text{Body: c.Text}, Id: id,
	}}}
	if err := m.toOwnDevices(ctx, to, copyOf, clientMessageID("copy", id, to)); err != nil {
		m.log.Warn("copy to own devices failed", "err", err)
		res.OwnCopyFailed, res.OwnCopyError = true, err.Error()
	}
	return res, nil
}

// toOwnDevices sends content to this account's other devices, if it has
// any, about a message to account to (nothing when to is this account:
// that send reached them).
func (m *Messenger) toOwnDevices(ctx context.Context, to []byte, content *spec.Content, cmid []byte) error {
	own := m.store.AccountID()
	if slices.Equal(to, own) {
		return nil
	}
	ok, err := m.hasOtherDevices(ctx)
	if err != nil || !ok {
		return err
	}
	_, err = m.deliver(ctx, own, encode(content), cmid, false)
	if errors.Is(err, ErrNoRecipients) {
		return nil // the other devices were removed meanwhile
	}
	return err
}

// SendReadReceipt tells account from that the messages with the given
// ids (MessageIDSize bytes each, concatenated) were read here. groupID
// is the group they were sent in, nil for one-to-one.
func (m *Messenger) SendReadReceipt(ctx context.Context, from, groupID, ids []byte) error {
	return m.sendReceipt(ctx, from, groupID, ids, spec.Receipt_TYPE_READ)
}

func (m *Messenger) sendReceipt(ctx context.Context, to, groupID, ids []byte, kind spec.Receipt_Type) error {
	if err := checkAccount(to); err != nil {
		return err
	}
	if len(ids) == 0 || len(ids)%MessageIDSize != 0 {
		return fmt.Errorf("messenger: receipt ids are %d bytes each", MessageIDSize)
	}
	if groupID != nil && len(groupID) != 16 {
		return ErrBadAccount
	}
	r := &spec.Receipt{Type: kind}
	for i := 0; i < len(ids); i += MessageIDSize {
		r.Ids = append(r.Ids, slices.Clone(ids[i:i+MessageIDSize]))
	}
	cmid, err := newClientMessageID()
	if err != nil {
		return err
	}
	_, err = m.deliver(ctx, to, encode(&spec.Content{GroupId: groupID, Body: &spec.Content_Receipt{Receipt: r}}), cmid, false)
	return err
}

// SendTyping shows account to that this account started (or stopped)
// typing. It is online-only: devices not connected now never see it,
// and nothing is stored or pushed. It returns what it reached.
func (m *Messenger) SendTyping(ctx context.Context, to []byte, started bool) (*SendResult, error) {
	if err := checkAccount(to); err != nil {
		return nil, err
	}
	cmid, err := newClientMessageID()
	if err != nil {
		return nil, err
	}
	d, err := m.deliver(ctx, to, encode(&spec.Content{Body: &spec.Content_Typing{Typing: &spec.Typing{Started: started}}}), cmid, true)
	if err != nil {
		return nil, err
	}
	return &SendResult{Devices: d.devices, Reached: d.reached, TimestampMillis: d.timestamp, Sealed: d.sealed, IdentifiedReason: d.why}, nil
}
