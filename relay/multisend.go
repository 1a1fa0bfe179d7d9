package relay

import (
	"errors"
	"slices"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/pigeonhole/pigeonhole/keys"
	"github.com/pigeonhole/pigeonhole/queue"
	"github.com/pigeonhole/pigeonhole/spec"
)

// multiSend queues (or, online only, hands to connected devices) one
// message for the devices of many accounts. It is all or nothing: a stale
// device list for any account refuses the whole send, naming every stale
// account.
func (c *conn) multiSend(id quic.StreamID, r *spec.MultiSendRequest) (*spec.SendResponse, *spec.Error) {
	start := time.Now()
	sender, senderDev, e := c.waitAuth(c.ctx, id)
	if e != nil {
		return nil, e
	}
	if e := c.s.allowSend(sender); e != nil {
		return nil, e
	}
	if len(r.ClientMessageId) != spec.ClientMessageIDSize {
		return nil, spec.Err(spec.CodeBadRequest, "client_message_id must be %d bytes", spec.ClientMessageIDSize)
	}
	if len(r.Accounts) == 0 {
		return nil, spec.Err(spec.CodeBadRequest, "a send needs at least one account")
	}
	total := 0
	for _, a := range r.Accounts {
		total += len(a.Messages)
	}
	if total > c.s.cfg.MaxMultiDevices {
		return nil, spec.Err(spec.CodeBadRequest, "at most %d device messages per send", c.s.cfg.MaxMultiDevices)
	}
	seen := make(map[keys.AccountID]bool, len(r.Accounts))
	var msgs []queue.Message
	var stale []*spec.StaleAccount
	for _, a := range r.Accounts {
		if len(a.Recipient) != spec.AccountIDSize {
			return nil, spec.Err(spec.CodeBadRequest, "recipient must be %d bytes", spec.AccountIDSize)
		}
		recipient := keys.AccountID(a.Recipient)
		if seen[recipient] {
			return nil, spec.Err(spec.CodeBadRequest, "an account is named twice")
		}
		seen[recipient] = true
		am, missing, extra, se := c.recipientMessages(sender, senderDev, recipient, a.Messages, r.ClientMessageId)
		if se != nil {
			return nil, se
		}
		if len(missing)+len(extra) > 0 {
			stale = append(stale, &spec.StaleAccount{AccountId: recipient[:], MissingDevices: missing, ExtraDevices: extra})
			continue
		}
		msgs = append(msgs, am...)
	}
	if len(stale) > 0 {
		se := spec.Err(spec.CodeStaleDevices, "the device lists of %d accounts are stale", len(stale))
		se.StaleAccounts = stale
		return nil, se
	}
	c.s.m.sendChecks.Observe(time.Since(start).Seconds())
	return c.commitSend(start, sender, senderDev, r.ClientMessageId, msgs, r.OnlineOnly)
}

// recipientMessages checks one recipient's device messages against its
// device list (a send to one's own account leaves out the sending device)
// and, if they match, returns them as queue messages. A mismatch is
// returned as missing and extra devices, not as an error.
func (c *conn) recipientMessages(sender keys.AccountID, senderDev uint32, recipient keys.AccountID, ms []*spec.DeviceMessage, msgID []byte) (msgs []queue.Message, missing, extra []uint32, e *spec.Error) {
	named, e := c.s.checkDeviceMessages(ms)
	if e != nil {
		return nil, nil, nil, e
	}
	current, err := c.s.keys.DeviceIDs(c.ctx, recipient)
	if err != nil {
		return nil, nil, nil, c.s.keyError("look up devices", err)
	}
	if recipient == sender {
		current = slices.DeleteFunc(slices.Clone(current), func(d uint32) bool { return d == senderDev })
	}
	if missing, extra = diffDevices(current, named); len(missing)+len(extra) > 0 {
		return nil, missing, extra, nil
	}
	msgs = make([]queue.Message, len(ms))
	for i, m := range ms {
		msgs[i] = queue.Message{
			To:     addrOf(recipient, m.DeviceId),
			Sender: sender,
			Body:   encodeStoredEnvelope(sender, senderDev, m.Type, m.Content, msgID),
		}
	}
	return msgs, nil, nil, nil
}

// commitSend finishes a checked send: online only, it hands msgs to
// connected devices; otherwise it stores them durably in one batch
// (deduplicated by the sender's message id) and wakes offline devices.
func (c *conn) commitSend(start time.Time, sender keys.AccountID, senderDev uint32, msgID []byte, msgs []queue.Message, onlineOnly bool) (*spec.SendResponse, *spec.Error) {
	if onlineOnly {
		return &spec.SendResponse{TimestampMs: c.s.now().UnixMilli(), Reached: uint32(c.s.deliverOnline(msgs))}, nil
	}
	stored := time.Now()
	res, err := c.s.queues.Append(c.ctx, dedupKey(sender, senderDev, msgID), msgs)
	c.s.m.sendStore.Observe(time.Since(stored).Seconds())
	if err != nil {
		if errors.Is(err, queue.ErrQueueFull) {
			return nil, spec.Err(spec.CodeQueueFull, "a recipient queue is full; retry later")
		}
		if errors.Is(err, queue.ErrSenderShare) {
			return nil, spec.Err(spec.CodeSenderShare, "you already have your share of messages queued for a recipient device (it has not fetched them); retry once it has")
		}
		return nil, c.s.internal("store the message", err)
	}
	if !res.Duplicate {
		c.s.m.accepted.Add(float64(len(msgs)))
		c.s.notifyOffline(msgs)
	}
	c.s.m.sendSeconds.Observe(time.Since(start).Seconds())
	return &spec.SendResponse{TimestampMs: res.Time.UnixMilli(), Duplicate: res.Duplicate}, nil
}

// checkDeviceMessages validates one account's device messages and returns
// the device ids they name, ascending.
func (s *Server) checkDeviceMessages(ms []*spec.DeviceMessage) ([]uint32, *spec.Error) {
	if len(ms) == 0 {
		return nil, spec.Err(spec.CodeBadRequest, "every recipient needs at least one device message")
	}
	named := make([]uint32, 0, len(ms))
	for _, m := range ms {
		if len(m.Content) > s.cfg.MaxEnvelopeBytes {
			return nil, spec.Err(spec.CodeEnvelopeTooLarge, "a ciphertext of %d bytes is over the %d-byte limit", len(m.Content), s.cfg.MaxEnvelopeBytes)
		}
		if len(m.Content) == 0 {
			return nil, spec.Err(spec.CodeBadRequest, "empty ciphertext for device %d", m.DeviceId)
		}
		named = append(named, m.DeviceId)
	}
	slices.Sort(named)
	if len(slices.Compact(slices.Clone(named))) != len(named) {
		return nil, spec.Err(spec.CodeDuplicateDevice, "a device is named twice")
	}
	return named, nil
}

// allowSend takes a token of sender's send rate limit.
func (s *Server) allowSend(sender keys.AccountID) *spec.Error {
	if ok, wait := s.sendLimit.allow(string(sender[:]), s.now()); !ok {
		e := spec.Err(spec.CodeRateLimited, "too many sends from this account")
		e.RetryAfterMs = uint32(max(1, wait/time.Millisecond))
		return e
	}
	return nil
}

func dedupKey(sender keys.AccountID, senderDev uint32, msgID []byte) []byte {
	k := make([]byte, 0, spec.AccountIDSize+4+spec.ClientMessageIDSize)
	k = append(k, sender[:]...)
	k = append(k, byte(senderDev>>24), byte(senderDev>>16), byte(senderDev>>8), byte(senderDev))
	return append(k, msgID...)
}

// deliverOnline hands each message to its device's receiving sessions,
// as an envelope with seq 0 (nothing to ack), and stores nothing. It
// returns how many devices took it; a device without a session, or whose
// session is backed up, misses it.
func (s *Server) deliverOnline(msgs []queue.Message) int {
	now := s.now().UnixMilli()
	reached := 0
	for _, m := range msgs {
		frame := appendEnvelopeFrame(nil, 0, now, m.Body)
		if s.sessions.offer(m.To, frame) || s.cluster.Offer(m.To, frame) {
			reached++
		}
	}
	s.m.online.Add(float64(reached))
	return reached
}
