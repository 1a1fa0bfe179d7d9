package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
	"github.com/pigeonhole/pigeonhole/relay/client/messenger"
	"github.com/pigeonhole/pigeonhole/spec"
)

// inbox is the Messenger's Handler for one recv or listen: it records
// what arrives in the conversation files and prints it (inboxout.go
// holds a batch back). It returns nil for everything the Messenger
// hands over, so each envelope is acked once it is in the history; what
// could not be recorded is reported, as before.
type inbox struct {
	c           *cli
	d           *e2e.Device
	m           *messenger.Messenger
	ctx         context.Context
	stop        context.CancelFunc // ends the Messenger's Run
	follow      bool               // listen
	deleteLimit time.Duration
	// json prints events as JSON Lines (recv/listen -json) instead of
	// lines for people.
	json bool
	// names shows accounts by their contact names.
	names *names
	// holding, held and heldBytes are the output of a batch held back
	// (inboxout.go); printed counts the lines printed, limit is
	// "listen -n" (0: none).
	holding   bool
	held      []heldLine
	heldBytes int
	printed   int
	limit     int
	// drained: the relay said the queue was drained; stopped: limit
	// reached; unreachable: why recv could not reach the relay.
	drained, stopped bool
	unreachable      error
	// down and last are listen's outage (connstate.go).
	down, last time.Time
}

// meta is what every printed event says about where it came from.
type meta struct {
	from       []byte
	fromDevice int64
	sentAt     int64
	id, group  []byte
}

func (in *inbox) self(acct []byte) bool { return slices.Equal(acct, in.d.AccountID()) }

// begin starts handling a stored event: output is held until the batch
// ends, and names are read again (contacts may have changed).
func (in *inbox) begin() {
	in.holding = true
	in.names = in.c.names(in.d.AccountID())
}

func when(ms int64) string { return time.UnixMilli(ms).Format("2006-01-02 15:04") }

// who is how a sender is shown: "you" for this account's other devices,
// else the contact name or the account id.
func (in *inbox) who(acct []byte) string { return in.names.of(hex.EncodeToString(acct)) }

// key names message id of sender from in conversation conv, for a
// delete in the same batch (msgKey).
func (in *inbox) key(conv, from, id []byte) string {
	f := ""
	if !in.self(from) {
		f = hex.EncodeToString(from)
	}
	return msgKey(conv, f, id)
}

// OnMessage records and prints a text or a file, from a contact, a
// group member or (FromSelf) another device of this account.
func (in *inbox) OnMessage(msg *messenger.Message) error {
	in.begin()
	c, mt := in.c, meta{from: msg.From, fromDevice: msg.FromDevice, sentAt: msg.SentAtMillis, id: msg.ID, group: msg.GroupID}
	switch {
	case msg.GroupID != nil:
		ch, err := c.readChat(msg.GroupID, true)
		if err != nil || ch.Group == nil {
			fmt.Fprintf(c.stderr, "pigeon: %v\n", err)
			return nil
		}
		g := ch.Group
		rec := &chatMessage{Text: msg.Text}
		if msg.FromSelf {
			// Sent from another device of this account: count receipts.
			me := hex.EncodeToString(in.d.AccountID())
			rec.To = slices.DeleteFunc(slices.Clone(g.Members), func(a string) bool { return a == me })
		}
		in.record(msg.GroupID, true, mt, rec)
		key := in.key(msg.GroupID, msg.From, msg.ID)
		if in.json {
			e := in.newEvent("message", mt)
			e.GroupName, e.Text = g.Name, msg.Text
			in.outJSON(key, e)
		} else {
			in.out(key, fmt.Sprintf("%s [%s] %s: %s", when(msg.SentAtMillis), g.Name, in.who(msg.From), msg.Text))
		}
	case msg.To != nil:
		// A copy of what this account sent from another device.
		dest := msg.To
		sent := &spec.Content{Id: msg.ID, SentAtMs: msg.SentAtMillis}
		c.recordSent(dest, false, sent, &chatMessage{Text: msg.Text, To: []string{hex.EncodeToString(dest)}})
		key := in.key(dest, msg.From, msg.ID)
		if in.json {
			e := in.newEvent("sent", mt)
			e.To, e.Text = hex.EncodeToString(dest), msg.Text
			e.ToName = in.names.name(e.To)
			in.outJSON(key, e)
		} else {
			in.out(key, fmt.Sprintf("%s you to %s: %s", when(msg.SentAtMillis), in.who(dest), msg.Text))
		}
	case msg.Attachment != nil:
		saved := c.saveAttachment(in.ctx, in.m, msg.From, msg.Attachment)
		if saved == "" {
			return nil
		}
		name, size := safeName(msg.Attachment.FileName), msg.Attachment.Size
		in.record(msg.From, false, mt, &chatMessage{File: name})
		key := in.key(msg.From, msg.From, msg.ID)
		if in.json {
			e := in.newEvent("file", mt)
			e.File, e.Path, e.Size = name, saved, size
			in.outJSON(key, e)
		} else {
			in.out(key, fmt.Sprintf("%s %s: file %s saved as %s (%s)", when(msg.SentAtMillis), in.who(msg.From), name, saved, humanSize(size)))
		}
	default:
		in.record(msg.From, false, mt, &chatMessage{Text: msg.Text})
		key := in.key(msg.From, msg.From, msg.ID)
		if in.json {
			e := in.newEvent("message", mt)
			e.Text = msg.Text
			in.outJSON(key, e)
		} else {
			in.out(key, fmt.Sprintf("%s %s: %s", when(msg.SentAtMillis), in.who(msg.From), msg.Text))
		}
	}
	return nil
}

// record adds a received message to its conversation; the Messenger
// owes its sender the delivered receipt.
func (in *inbox) record(conv []byte, group bool, mt meta, cm *chatMessage) {
	if len(mt.id) != messageIDSize {
		return // an older client's message: nothing to refer to it by
	}
	cm.ID = hex.EncodeToString(mt.id)
	cm.SentAt = mt.sentAt
	cm.At = time.Now().UnixMilli()
	if !in.self(mt.from) {
		cm.From = hex.EncodeToString(mt.from)
	}
	err := in.c.updateChat(conv, group, func(ch *chat) error {
		if !ch.add(cm) {
			return errUnchanged
		}
		return nil
	})
	if err != nil {
		fmt.Fprintf(in.c.stderr, "pigeon: could not record the message in the history: %v\n", err)
	}
}

// OnReceipt marks this account's messages in the conversation as
// delivered to, or read by, the receipt's sender, and prints the
// receipt with -json only (people see receipts as marks in "pigeon
// history").
func (in *inbox) OnReceipt(r *messenger.Receipt) error {
	in.begin()
	conv, group := r.From, false
	if r.GroupID != nil {
		conv, group = r.GroupID, true
	}
	who := hex.EncodeToString(r.From)
	var ids []string
	for i := range r.Count() {
		ids = append(ids, hex.EncodeToString(r.ID(i)))
	}
	err := in.c.updateChat(conv, group, func(ch *chat) error {
		changed := false
		for _, id := range ids {
			m := ch.find(id, "")
			if m == nil || !slices.Contains(m.To, who) {
				continue
			}
			changed = addOnce(&m.Delivered, who) || changed
			if r.Read {
				changed = addOnce(&m.Read, who) || changed
			}
		}
		if !changed {
			return errUnchanged
		}
		return nil
	})
	if err != nil {
		fmt.Fprintf(in.c.stderr, "pigeon: could not record a receipt: %v\n", err)
	}
	if in.json {
		e := in.newEvent("receipt", meta{from: r.From, fromDevice: r.FromDevice, sentAt: r.SentAtMillis, group: r.GroupID})
		e.Receipt, e.IDs = "delivered", ids
		if r.Read {
			e.Receipt = "read"
		}
		in.outJSON("", e)
	}
	return nil
}

// OnTyping prints a typing indicator (online-only: it does not start
// holding a batch).
func (in *inbox) OnTyping(t *messenger.Typing) error {
	in.names = in.c.names(in.d.AccountID())
	group := ""
	if t.GroupID != nil {
		ch, err := in.c.readChat(t.GroupID, true)
		if err != nil || ch.Group == nil {
			return nil
		}
		group = ch.Group.Name
	}
	text := "stopped typing"
	if t.Started {
		text = "is typing"
	}
	mt := meta{from: t.From, fromDevice: t.FromDevice, sentAt: t.SentAtMillis, group: t.GroupID}
	switch {
	case in.json:
		e := in.newEvent("typing", mt)
		e.GroupName = group
		started := t.Started
		e.Typing = &started
		in.outJSON("", e)
	case group == "":
		in.out("", fmt.Sprintf("%s %s %s", when(t.SentAtMillis), in.who(t.From), text))
	default:
		in.out("", fmt.Sprintf("%s [%s] %s %s", when(t.SentAtMillis), group, in.who(t.From), text))
	}
	return nil
}

// OnDelete honours a delete for everyone of a message its sender sent,
// if it arrived within the limit.
func (in *inbox) OnDelete(d *messenger.Delete) error {
	in.begin()
	c := in.c
	conv, group, label, groupName := d.From, false, "", ""
	switch {
	case d.GroupID != nil:
		conv, group = d.GroupID, true
		if ch, err := c.readChat(d.GroupID, true); err == nil && ch.Group != nil {
			groupName = ch.Group.Name
			label = "[" + groupName + "] "
		}
	case d.FromSelf:
		conv = d.To
	}
	id := hex.EncodeToString(d.MessageID)
	from := ""
	if !d.FromSelf {
		from = hex.EncodeToString(d.From)
	}
	var result string
	err := c.updateChat(conv, group, func(ch *chat) error {
		msg := ch.find(id, from)
		switch {
		case msg == nil:
			result = "unknown"
			return errUnchanged
		case msg.Deleted:
			result = "done"
			return errUnchanged
		case !d.Within(msg.At):
			result = "late"
			return errUnchanged
		}
		msg.Deleted, msg.Text, msg.File = true, "", ""
		result = "deleted"
		return nil
	})
	mt := meta{from: d.From, fromDevice: d.FromDevice, sentAt: d.SentAtMillis, group: d.GroupID}
	switch {
	case err != nil:
		fmt.Fprintf(c.stderr, "pigeon: could not delete a message: %v\n", err)
	case result == "deleted":
		// The message's own line, if this batch holds it, never shows.
		in.unprint(msgKey(conv, from, d.MessageID))
		if in.json {
			e := in.newEvent("delete", mt)
			e.Deleted, e.GroupName = id, groupName
			in.outJSON("", e)
		} else {
			in.out("", fmt.Sprintf("%s %s%s deleted a message", when(d.SentAtMillis), label, in.who(d.From)))
		}
	case result == "late":
		fmt.Fprintf(c.stderr, "pigeon: %s asked to delete a message older than the %v limit; it was kept\n", in.who(d.From), in.deleteLimit)
	}
	return nil
}

// OnGroup prints a group's change; the Messenger has kept its new state
// in the conversation file (chatGroups).
func (in *inbox) OnGroup(g *messenger.GroupChange) error {
	in.begin()
	var added, gone []string
	for i := range g.AddedCount() {
		added = append(added, hex.EncodeToString(g.AddedMember(i)))
	}
	for i := range g.RemovedCount() {
		gone = append(gone, hex.EncodeToString(g.RemovedMember(i)))
	}
	if in.json {
		e := in.newEvent("group", meta{from: g.From, fromDevice: g.FromDevice, sentAt: g.SentAtMillis, group: g.GroupID})
		e.GroupName, e.Change, e.Members = g.Name, g.Kind, g.MemberCount()
		e.Added, e.Removed = added, gone
		in.outJSON("", e)
		return nil
	}
	shown := func(accts []string) string {
		out := make([]string, len(accts))
		for i, a := range accts {
			out[i] = in.names.of(a)
		}
		return strings.Join(out, ", ")
	}
	at, label, actor := when(g.SentAtMillis), "["+g.Name+"] ", in.who(g.Admin)
	switch g.Kind {
	case messenger.GroupJoined:
		in.out("", fmt.Sprintf("%s %s%s added you to the group (%d members)", at, label, actor, g.MemberCount()))
	case messenger.GroupRemoved:
		in.out("", fmt.Sprintf("%s %s%s removed you from the group", at, label, actor))
	case messenger.GroupChanged:
		var parts []string
		if len(added) > 0 {
			parts = append(parts, "added "+shown(added))
		}
		if len(gone) > 0 {
			parts = append(parts, "removed "+shown(gone))
		}
		if len(parts) == 0 {
			parts = append(parts, "renamed the group")
		}
		in.out("", fmt.Sprintf("%s %s%s %s", at, label, actor, strings.Join(parts, "; ")))
	}
	return nil
}

// OnDevices says that this account's devices changed.
func (in *inbox) OnDevices(d *messenger.DeviceChange) error {
	ids := make([]int64, d.Count())
	for i := range ids {
		ids[i] = d.DeviceID(i)
	}
	fmt.Fprintf(in.c.stderr, "pigeon: this account's devices are now %v; \"pigeon devices\" lists them\n", ids)
	return nil
}

// OnDropped says on stderr why a message was not shown.
func (in *inbox) OnDropped(d *messenger.Dropped) {
	c := in.c
	in.names = c.names(in.d.AccountID())
	from := short(d.From)
	switch d.Reason {
	case messenger.DropSealed:
		fmt.Fprintf(c.stderr, "pigeon: dropped a sealed message: %s\n", d.Err)
	case messenger.DropIdentityChanged:
		fmt.Fprintf(c.stderr, "pigeon: dropped a message from %s: their identity key changed\n", in.names.short(d.From))
		c.identityChanged(in.d, d.From)
	case messenger.DropNoSenderKey:
		fmt.Fprintf(c.stderr, "pigeon: could not decrypt a group message from %s: this device does not have their group key (it is given only to members)\n", from)
	case messenger.DropUndecryptable:
		fmt.Fprintf(c.stderr, "pigeon: could not decrypt a message from %s: %s\n", from, d.Err)
	case messenger.DropNotMember:
		fmt.Fprintf(c.stderr, "pigeon: dropped a group message from %s: they are not in a group with you\n", from)
	case messenger.DropGroupUpdate:
		if d.NotAdmin {
			fmt.Fprintf(c.stderr, "pigeon: ignored a change to %q from %s: only its admin can change it\n", d.GroupName, from)
		} else {
			fmt.Fprintf(c.stderr, "pigeon: refused a malformed group update from %s\n", from)
		}
	case messenger.DropSenderKey:
		fmt.Fprintf(c.stderr, "pigeon: refused a group key from %s: %s\n", from, d.Err)
	case messenger.DropUnsupported:
		if d.GroupID != nil {
			fmt.Fprintf(c.stderr, "pigeon: %s sent a kind of group message this version of pigeon cannot show\n", from)
		} else {
			fmt.Fprintf(c.stderr, "pigeon: %s sent a kind of message this version of pigeon cannot show\n", in.names.short(d.From))
		}
	default:
		fmt.Fprintf(c.stderr, "pigeon: unreadable message from %s\n", from)
	}
}

// OnDrained prints the batch held back; the first time, it replaces the
// signed prekeys if that is due. recv ends here (RunUntilDrained).
func (in *inbox) OnDrained() {
	if !in.drained {
		in.c.rotateIfDue(in.ctx, in.m)
	}
	in.drained = true
	in.flush(false)
}

// OnConnection: listen says when it lost the relay and when it is back
// (connstate.go); recv gives up at once.
func (in *inbox) OnConnection(connected bool, reason string, retryMillis int64) {
	if in.follow {
		in.report(connected, reason, time.Duration(retryMillis)*time.Millisecond)
		return
	}
	if !connected && in.unreachable == nil {
		in.unreachable = fmt.Errorf("%s", reason)
		in.stop()
	}
}

// addOnce appends s to *list unless it is there, and reports whether it
// did.
func addOnce(list *[]string, s string) bool {
	if slices.Contains(*list, s) {
		return false
	}
	*list = append(*list, s)
	return true
}
