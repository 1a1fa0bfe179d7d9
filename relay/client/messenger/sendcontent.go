package messenger

import (
	"context"
	"fmt"

	"github.com/pigeonhole/pigeonhole/spec"
)

// The Go surface's sends of any Content (spec/content.proto), for what
// the binding surface's Send does not cover: attachments, deletes,
// delivered receipts.

// SendContent sends c to every device of account to, as Send does (its
// access key added, sealed when possible, STALE_DEVICES followed), and
// then copyOf, if not nil, to this account's other devices (a failure
// there only sets OwnCopyFailed). A Typing body goes online-only. When c
// has an id (MessageIDSize bytes) the client message ids derive from it,
// so a retried SendContent lands once; c.SentAtMs 0 means now.
func (m *Messenger) SendContent(ctx context.Context, to []byte, c, copyOf *spec.Content) (*SendResult, error) {
	if err := checkAccount(to); err != nil {
		return nil, err
	}
	if c == nil || c.Body == nil {
		return nil, ErrEmpty
	}
	if c.GroupId != nil && len(c.GroupId) != 16 {
		return nil, ErrBadAccount
	}
	id := c.GetId()
	var cmid, copyID []byte
	switch {
	case len(id) == MessageIDSize:
		cmid, copyID = clientMessageID("content", id, to), clientMessageID("content-copy", id, to)
	case len(id) == 0:
		var err error
		if cmid, err = newClientMessageID(); err != nil {
			return nil, err
		}
		if copyID, err = newClientMessageID(); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("messenger: a message id is %d bytes", MessageIDSize)
	}
	_, online := c.Body.(*spec.Content_Typing)
	d, err := m.deliver(ctx, to, encode(c), cmid, online)
	if err != nil {
		return nil, err
	}
	res := &SendResult{ID: id, Devices: d.devices, Reached: d.reached, Duplicate: d.duplicate, TimestampMillis: d.timestamp,
		Sealed: d.sealed, IdentifiedReason: d.why}
	if copyOf != nil {
		if copyOf.SentAtMs == 0 {
			copyOf.SentAtMs = c.SentAtMs
		}
		if err := m.toOwnDevices(ctx, to, copyOf, copyID); err != nil {
			m.log.Warn("copy to own devices failed", "err", err)
			res.OwnCopyFailed, res.OwnCopyError = true, err.Error()
		}
	}
	return res, nil
}

// SendDelete asks account to to delete the message with id (one this
// account sent it), and this account's other devices to delete their
// copy ("delete for everyone"; receivers apply their own time limit).
func (m *Messenger) SendDelete(ctx context.Context, to, id []byte) (*SendResult, error) {
	if len(id) != MessageIDSize {
		return nil, fmt.Errorf("messenger: a message id is %d bytes", MessageIDSize)
	}
	c := &spec.Content{Body: &spec.Content_Delete{Delete: &spec.Delete{Id: id}}}
	copyOf := &spec.Content{Body: &spec.Content_Delete{Delete: &spec.Delete{Id: id, Destination: to}}}
	return m.SendContent(ctx, to, c, copyOf)
}

// SendDeliveredReceipt tells account from that the messages with the
// given ids (MessageIDSize bytes each, concatenated) were delivered
// here; Run sends these itself, this is for a Go program with a receive
// loop of its own. groupID is the group they were sent in, nil for
// one-to-one.
func (m *Messenger) SendDeliveredReceipt(ctx context.Context, from, groupID, ids []byte) error {
	return m.sendReceipt(ctx, from, groupID, ids, spec.Receipt_TYPE_DELIVERED)
}
