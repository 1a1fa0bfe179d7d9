package messenger

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
	"github.com/pigeonhole/pigeonhole/spec"
)

// dispatch reads a decrypted envelope's content. Every field came from
// a sender who may be hostile: sizes are checked before use. An error
// means the local store failed on the way (an e2e.ErrStorage): the
// envelope is not to be acked, and its kept plaintext (e2e's kept.go)
// is dispatched again when it comes again.
func (m *Messenger) dispatch(ctx context.Context, env *client.Envelope, plain, group []byte) (event, error) {
	from := shortID(env.Sender)
	var c spec.Content
	if err := proto.Unmarshal(plain, &c); err != nil || (group != nil && !bytes.Equal(c.GetGroupId(), group)) {
		m.log.Warn("dropped an unreadable message", "from", from)
		return dropped(env, DropUnreadable, nil), nil
	}
	if err := m.LearnAccessKey(env.Sender, c.GetAccessKey()); err != nil {
		m.log.Warn("sends to this contact stay identified", "from", from, "err", err)
	}
	if gid := c.GetGroupId(); gid != nil {
		if len(gid) != e2e.GroupIDSize {
			m.log.Warn("dropped an unreadable message", "from", from)
			return dropped(env, DropUnreadable, nil), nil
		}
		return m.dispatchGroup(ctx, env, &c, group != nil)
	}
	self := bytes.Equal(env.Sender, m.store.AccountID())
	switch b := c.Body.(type) {
	case *spec.Content_Text:
		return m.message(env, &c, b.Text.GetBody()), nil
	case *spec.Content_Attachment:
		msg := m.message(env, &c, "")
		msg.Attachment = attachmentOf(b.Attachment)
		return msg, nil
	case *spec.Content_Delete:
		// From a contact: their message to this account. From another
		// device of this account: its message to Destination.
		d := m.deleteOf(env, &c, b.Delete)
		if self {
			d.To = b.Delete.GetDestination()
			if len(d.To) != 16 {
				return nil, nil
			}
		}
		if len(d.MessageID) != MessageIDSize {
			return dropped(env, DropUnreadable, nil), nil
		}
		return d, nil
	case *spec.Content_Sent:
		dest := b.Sent.GetDestination()
		if !self || len(dest) != 16 {
			return nil, nil
		}
		msg := m.message(env, &c, b.Sent.GetText().GetBody())
		msg.ID, msg.To = idOrNil(b.Sent.GetId()), dest
		return msg, nil
	case *spec.Content_Receipt:
		return m.receipt(env, &c, nil, b.Receipt), nil
	case *spec.Content_Typing:
		return &Typing{From: env.Sender, FromDevice: int64(env.SenderDevice), Started: b.Typing.GetStarted(), SentAtMillis: c.GetSentAtMs()}, nil
	}
	m.log.Info("dropped a kind of message this version does not handle", "from", from)
	return dropped(env, DropUnsupported, nil), nil
}

// deleteOf is the Delete event of d, as the limit of m's config has it.
func (m *Messenger) deleteOf(env *client.Envelope, c *spec.Content, d *spec.Delete) *Delete {
	return &Delete{
		MessageID: d.GetId(), From: env.Sender, FromDevice: int64(env.SenderDevice),
		FromSelf: bytes.Equal(env.Sender, m.store.AccountID()), GroupID: c.GetGroupId(),
		SentAtMillis: c.GetSentAtMs(), ReceivedAtMillis: env.TimestampMillis, Sealed: env.Sealed,
		limit: m.cfg.deleteLimit(),
	}
}

func idOrNil(id []byte) []byte {
	if len(id) != MessageIDSize {
		return nil
	}
	return id
}

func (m *Messenger) message(env *client.Envelope, c *spec.Content, text string) *Message {
	return &Message{
		ID: idOrNil(c.GetId()), From: env.Sender, FromDevice: int64(env.SenderDevice),
		FromSelf: bytes.Equal(env.Sender, m.store.AccountID()),
		Text:     text, SentAtMillis: c.GetSentAtMs(), ReceivedAtMillis: env.TimestampMillis,
		Sealed: env.Sealed,
	}
}

func (m *Messenger) receipt(env *client.Envelope, c *spec.Content, group []byte, r *spec.Receipt) event {
	if bytes.Equal(env.Sender, m.store.AccountID()) {
		return nil
	}
	out := &Receipt{From: env.Sender, FromDevice: int64(env.SenderDevice), GroupID: group, SentAtMillis: c.GetSentAtMs()}
	switch r.GetType() {
	case spec.Receipt_TYPE_DELIVERED:
	case spec.Receipt_TYPE_READ:
		out.Read = true
	default:
		return nil
	}
	for _, id := range r.GetIds() {
		if len(id) == MessageIDSize {
			out.IDs = append(out.IDs, id...)
		}
	}
	if len(out.IDs) == 0 {
		return nil
	}
	return out
}

// dispatchGroup handles a message that belongs to a group: its state and
// sender keys (which come pairwise), and what members write (which comes
// encrypted with the sender's key). viaKey is true for a message that
// came group-encrypted.
func (m *Messenger) dispatchGroup(ctx context.Context, env *client.Envelope, c *spec.Content, viaKey bool) (event, error) {
	gid, from := c.GetGroupId(), env.Sender
	switch b := c.Body.(type) {
	case *spec.Content_GroupUpdate:
		if viaKey {
			return nil, nil // only ever sent pairwise, by the admin
		}
		return m.applyGroupUpdate(env, c, b.GroupUpdate)
	case *spec.Content_SenderKey:
		if viaKey {
			return nil, nil
		}
		// Kept even before the group's state arrives (members write to
		// a new member as soon as they learn of it); what it decrypts is
		// shown only from members.
		if err := m.store.ProcessSenderKeyDistribution(ctx, gid, from, env.SenderDevice, b.SenderKey.GetDistribution()); err != nil {
			if errors.Is(err, e2e.ErrStorage) {
				return nil, err
			}
			m.log.Warn("refused a group key", "from", shortID(from), "err", err)
			d := dropped(env, DropSenderKey, err)
			d.GroupID = gid
			return d, nil
		}
		return nil, nil
	case *spec.Content_Receipt:
		return m.receipt(env, c, gid, b.Receipt), nil
	}
	g, err := m.loadGroup(gid)
	if err != nil {
		m.log.Warn("group record unreadable", "err", err)
		return nil, localFailure("read the group record", err)
	}
	if g == nil || g.Removed || !slices.Contains(g.Members, hex.EncodeToString(from)) {
		m.log.Info("dropped a group message from someone not in a group with this account", "from", shortID(from))
		d := dropped(env, DropNotMember, nil)
		d.GroupID = gid
		return d, nil
	}
	switch b := c.Body.(type) {
	case *spec.Content_Text:
		msg := m.message(env, c, b.Text.GetBody())
		msg.GroupID = gid
		return msg, nil
	case *spec.Content_Typing:
		return &Typing{From: from, FromDevice: int64(env.SenderDevice), GroupID: gid, Started: b.Typing.GetStarted(), SentAtMillis: c.GetSentAtMs()}, nil
	case *spec.Content_Delete:
		d := m.deleteOf(env, c, b.Delete)
		if len(d.MessageID) != MessageIDSize {
			return dropped(env, DropUnreadable, nil), nil
		}
		return d, nil
	}
	m.log.Info("dropped a kind of group message this version does not handle", "from", shortID(from))
	d := dropped(env, DropUnsupported, nil)
	d.GroupID = gid
	return d, nil
}

// applyGroupUpdate takes a group's new state. It counts only from the
// admin it names, or from another device of this account (which passes
// the state on to devices linked later), and only if the group id is
// bound to that admin (e2e.GroupIDMatches), so nobody else can be first
// to describe the admin's group. Later states need a higher revision.
// When members were removed, this device makes a new sender key and
// forgets theirs; when this account was removed, it forgets the group's
// keys.
func (m *Messenger) applyGroupUpdate(env *client.Envelope, c *spec.Content, u *spec.GroupUpdate) (event, error) {
	gid := c.GetGroupId()
	from, me := hex.EncodeToString(env.Sender), hex.EncodeToString(m.store.AccountID())
	admin := hex.EncodeToString(u.GetAdmin())
	members, ok := groupMembers(u.GetMembers())
	switch {
	case !ok || checkGroupName(u.GetName()) != nil || !slices.Contains(members, admin) || !e2e.GroupIDMatches(gid, u.GetAdmin(), u.GetSalt()):
		m.log.Warn("refused a malformed group update", "from", shortID(env.Sender))
		d := dropped(env, DropGroupUpdate, nil)
		d.GroupID, d.GroupName = gid, u.GetName()
		return d, nil
	case from != admin && from != me:
		m.log.Warn("ignored a group change from someone not its admin", "from", shortID(env.Sender))
		d := dropped(env, DropGroupUpdate, nil)
		d.GroupID, d.GroupName, d.NotAdmin = gid, u.GetName(), true
		return d, nil
	}
	var kind string
	var added, gone []string
	err := m.updateGroup(gid, func(p **group) error {
		g := *p
		switch {
		case g == nil && !slices.Contains(members, me):
			return errUnchanged // removed from a group this device never knew
		case g == nil:
			*p = &group{Name: u.GetName(), Admin: admin, Salt: hex.EncodeToString(u.GetSalt()), Members: members, Revision: u.GetRevision()}
			kind = GroupJoined
			return nil
		case g.Admin != admin || u.GetRevision() <= g.Revision:
			return errUnchanged // seen already (the id binds the admin)
		}
		for _, old := range g.Members {
			if !slices.Contains(members, old) {
				gone = append(gone, old)
			}
		}
		for _, n := range members {
			if !slices.Contains(g.Members, n) {
				added = append(added, n)
			}
		}
		g.Name, g.Members, g.Revision = u.GetName(), members, u.GetRevision()
		switch {
		case !slices.Contains(members, me):
			g.Removed, g.KeySentTo = true, nil
			kind = GroupRemoved
			return m.store.LeaveGroup(gid)
		case g.Removed:
			g.Removed = false
			kind = GroupJoined
		default:
			kind = GroupChanged
		}
		if len(gone) > 0 {
			return m.rotateLocked(gid, g, gone)
		}
		return nil
	})
	if err != nil {
		m.log.Warn("could not apply a group update", "err", err)
		return nil, localFailure("apply a group update", err)
	}
	if kind == "" {
		return nil, nil
	}
	gc := &GroupChange{GroupID: gid, Kind: kind, Name: u.GetName(), Admin: u.GetAdmin(),
		From: env.Sender, FromDevice: int64(env.SenderDevice), SentAtMillis: c.GetSentAtMs(),
		Added: joinHex(added), Removed: joinHex(gone)}
	for _, r := range u.GetMembers() {
		gc.Members = append(gc.Members, r...)
	}
	return gc, nil
}

// groupMembers checks and encodes a member list: account ids, none twice,
// at most MaxGroupMembers.
func groupMembers(raw [][]byte) ([]string, bool) {
	if len(raw) == 0 || len(raw) > MaxGroupMembers {
		return nil, false
	}
	out := make([]string, 0, len(raw))
	for _, r := range raw {
		h := hex.EncodeToString(r)
		if len(r) != 16 || slices.Contains(out, h) {
			return nil, false
		}
		out = append(out, h)
	}
	return out, true
}

// joinHex concatenates account ids given in hex (as group records keep
// them).
func joinHex(ids []string) []byte {
	var out []byte
	for _, id := range ids {
		b, err := hex.DecodeString(id)
		if err == nil {
			out = append(out, b...)
		}
	}
	return out
}

// localFailure is a failure of this device's own store while a message
// was dispatched, which leaves the envelope queued (retryable); a
// group record that does not parse is not one (it never will).
func localFailure(what string, err error) error {
	if errors.Is(err, errBadGroupRecord) {
		return nil
	}
	if errors.Is(err, e2e.ErrStorage) {
		return fmt.Errorf("messenger: %s: %w", what, err)
	}
	return fmt.Errorf("messenger: %s: %w: %w", what, e2e.ErrStorage, err)
}
