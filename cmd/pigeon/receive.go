package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
	"github.com/pigeonhole/pigeonhole/spec"
)

// defaultDeleteLimit is how old a message may be and still be deleted for
// everyone: the sender's "pigeon delete" refuses older ones, and
// receivers ignore deletes of messages they got longer ago.
const defaultDeleteLimit = 48 * time.Hour

// receiveFlags are the flags of "pigeon recv" and "pigeon listen".
type receiveFlags struct {
	count       int
	saveDir     string
	deleteLimit time.Duration
	json        bool
}

func (f *receiveFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&f.count, "n", 0, "exit after printing this many messages (listen; 0: never)")
	fs.StringVar(&f.saveDir, "save", ".", "save received files in this `directory`")
	fs.DurationVar(&f.deleteLimit, "delete-limit", defaultDeleteLimit, "honour \"delete for everyone\" for messages received at most this `long` ago")
	jsonFlag(fs, &f.json)
}

// receive prints messages: what is queued (recv), or everything until
// interrupted (listen).
func (c *cli) receive(ctx context.Context, args []string, follow bool) error {
	name := "recv"
	if follow {
		name = "listen"
	}
	fs := c.flagSet(name)
	var f receiveFlags
	f.register(fs)
	count, deleteLimit := &f.count, &f.deleteLimit
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	c.saveDir = f.saveDir
	if fs.NArg() != 0 {
		return usagef("pigeon "+name+" [-json] [-save DIR] [-delete-limit 48h]", "%s takes no arguments", name)
	}
	d, opts, creds, err := c.registered()
	if err != nil {
		return err
	}
	unlock, err := c.lockReceiving()
	if err != nil {
		return err
	}
	defer unlock()
	cleanStaleParts(c.saveDir, time.Now())
	if !follow {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
	}
	cl := client.New(opts, creds, 64)
	defer cl.Close()
	// Refills and rotations go through the messenger, send-only beside
	// this receiving client; it dials only when one is needed.
	keys, err := c.messengerFor(opts)
	if err != nil {
		return err
	}
	defer keys.Close()
	var unreachable error // recv: why the relay could not be reached
	if follow {
		c.reportConnection(cl)
	} else {
		// recv fails at once, and as clearly as send, when the relay
		// cannot be reached, instead of retrying until its deadline.
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		cl.Retrying = func(err error, _ time.Duration) {
			unreachable = err
			cancel()
		}
	}
	in := &inbox{c: c, d: d, cl: cl, deleteLimit: *deleteLimit, json: f.json, receipts: map[receiptKey][][]byte{}, limit: *count}
	defer in.flush(false)
	if follow {
		fmt.Fprintln(c.stderr, "pigeon: listening; Ctrl-C stops")
	}
	drained := false
	for {
		ev, err := cl.Next(ctx)
		if err != nil {
			if ctx.Err() != nil && follow {
				in.finish()
				return nil
			}
			if unreachable != nil {
				return unreachableError(opts, unreachable)
			}
			return relayError("receive", err)
		}
		switch ev.Kind {
		case client.EventEnvelope:
			if ev.Envelope.Seq != 0 {
				in.hold() // until the relay says the batch is drained
			}
			in.show(ctx, ev.Envelope)
			if err := cl.Ack(ev.Envelope.Seq); err != nil {
				return relayError("ack", err)
			}
			if drained {
				in.sendReceipts(ctx)
			}
			if *count > 0 && in.printed >= *count {
				in.finish()
				return nil
			}
		case client.EventPreKeysLow:
			c.refill(ctx, keys, ev.PreKeysRemaining, ev.KemPreKeysRemaining)
		case client.EventDevices:
			fmt.Fprintf(c.stderr, "pigeon: this account's devices are now %v; \"pigeon devices\" lists them\n", ev.DeviceIDs)
		case client.EventDrained:
			if !drained {
				c.rotateIfDue(ctx, keys)
			}
			drained = true
			in.flush(false)
			if *count > 0 && in.printed >= *count {
				in.finish()
				return nil
			}
			in.sendReceipts(ctx)
			if !follow {
				in.finish()
				return nil
			}
		}
	}
}

// inbox handles what one recv or listen receives.
type inbox struct {
	c           *cli
	d           *e2e.Device
	cl          *client.Client
	deleteLimit time.Duration
	// json prints events as JSON Lines (recv/listen -json) instead of
	// lines for people.
	json bool
	// receipts are the delivered receipts not sent yet, by sender and group.
	receipts map[receiptKey][][]byte
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
}

type receiptKey struct{ to, group string }

// finish sends the receipts still owed and ends the session so the relay
// makes the acks durable.
func (in *inbox) finish() {
	in.flush(false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	in.sendReceipts(ctx)
	conn, err := in.cl.Conn(ctx)
	if err == nil {
		_ = conn.Finish(ctx)
	}
}

// show decrypts and handles one envelope and reports whether it printed
// a message. What cannot be decrypted is reported and acked all the
// same: it would never decrypt later.
func (in *inbox) show(ctx context.Context, env *client.Envelope) bool {
	c := in.c
	in.names = c.names(in.d.AccountID())
	var plain, group []byte
	var err error
	if env.Sealed {
		// The sender is in the seal: shown, and decrypted with, as its
		// certificate names it.
		m, err := c.messenger()
		if err == nil {
			env, err = m.OpenSealed(ctx, env)
		}
		if err != nil {
			fmt.Fprintf(c.stderr, "pigeon: dropped a sealed message: %v\n", err)
			return false
		}
	}
	if env.Type == e2e.TypeGroup {
		group, plain, err = in.d.DecryptGroup(ctx, env)
	} else {
		plain, err = in.d.Decrypt(ctx, env)
	}
	switch {
	case errors.Is(err, e2e.ErrDuplicate):
		return false
	case errors.Is(err, e2e.ErrIdentityChanged):
		fmt.Fprintf(c.stderr, "pigeon: dropped a message from %s: their identity key changed\n", in.names.short(env.Sender))
		c.identityChanged(in.d, env.Sender)
		return false
	case errors.Is(err, e2e.ErrNoSenderKey):
		fmt.Fprintf(c.stderr, "pigeon: could not decrypt a group message from %s: this device does not have their group key (it is given only to members)\n", short(env.Sender))
		return false
	case err != nil:
		fmt.Fprintf(c.stderr, "pigeon: could not decrypt a message from %s: %v\n", short(env.Sender), err)
		return false
	}
	var content spec.Content
	if err := proto.Unmarshal(plain, &content); err != nil || (group != nil && string(content.GetGroupId()) != string(group)) {
		fmt.Fprintf(c.stderr, "pigeon: unreadable message from %s\n", short(env.Sender))
		return false
	}
	if key := content.GetAccessKey(); key != nil {
		m, err := c.messenger()
		if err == nil {
			err = m.LearnAccessKey(env.Sender, key)
		}
		if err != nil {
			fmt.Fprintf(c.stderr, "pigeon: could not keep an access key (sends to %s stay identified): %v\n", short(env.Sender), err)
		}
	}
	m := &incoming{env: env, content: &content, group: group != nil, when: time.UnixMilli(content.GetSentAtMs()).Format("2006-01-02 15:04")}
	if gid := content.GetGroupId(); gid != nil {
		if len(gid) != e2e.GroupIDSize {
			fmt.Fprintf(c.stderr, "pigeon: unreadable message from %s\n", short(env.Sender))
			return false
		}
		return in.showGroup(ctx, m)
	}
	return in.showDirect(ctx, m)
}

// incoming is one decrypted message.
type incoming struct {
	env     *client.Envelope
	content *spec.Content
	group   bool // it came group-encrypted (with the group's sender key)
	when    string
}

func (m *incoming) fromSelf(d *e2e.Device) bool { return string(m.env.Sender) == string(d.AccountID()) }

// sender is how a message's sender is shown: "you" for this account's
// other devices, else the contact name or the account id.
func (in *inbox) sender(m *incoming) string {
	return in.names.of(hex.EncodeToString(m.env.Sender))
}

// key names the message m in conversation conv, for a delete in the same
// batch (msgKey).
func (in *inbox) key(conv []byte, m *incoming, id []byte) string {
	from := ""
	if !m.fromSelf(in.d) {
		from = hex.EncodeToString(m.env.Sender)
	}
	return msgKey(conv, from, id)
}

// showDirect handles a one-to-one message.
func (in *inbox) showDirect(ctx context.Context, m *incoming) bool {
	c, d, content, from := in.c, in.d, m.content, m.env.Sender
	switch b := content.Body.(type) {
	case *spec.Content_Text:
		in.record(from, false, m, &chatMessage{Text: b.Text.GetBody()})
		key := in.key(from, m, content.GetId())
		if in.json {
			e := in.newEvent("message", m)
			e.Text = b.Text.GetBody()
			in.outJSON(key, e)
		} else {
			in.out(key, fmt.Sprintf("%s %s: %s", m.when, in.sender(m), b.Text.GetBody()))
		}
		return true
	case *spec.Content_Attachment:
		saved := c.saveAttachment(ctx, in.cl, from, b.Attachment)
		if saved == "" {
			return false
		}
		name, size := safeName(b.Attachment.GetFileName()), int64(b.Attachment.GetSize())
		in.record(from, false, m, &chatMessage{File: name})
		key := in.key(from, m, content.GetId())
		if in.json {
			e := in.newEvent("file", m)
			e.File, e.Path, e.Size = name, saved, size
			in.outJSON(key, e)
		} else {
			in.out(key, fmt.Sprintf("%s %s: file %s saved as %s (%s)", m.when, in.sender(m), name, saved, humanSize(size)))
		}
		return true
	case *spec.Content_Sent:
		if !m.fromSelf(d) || len(b.Sent.GetDestination()) != 16 {
			return false
		}
		// A copy of what this account sent from another device.
		dest := b.Sent.GetDestination()
		sent := &spec.Content{Id: b.Sent.GetId(), SentAtMs: content.GetSentAtMs()}
		c.recordSent(dest, false, sent, &chatMessage{Text: b.Sent.GetText().GetBody(), To: []string{hex.EncodeToString(dest)}})
		key := in.key(dest, m, b.Sent.GetId())
		if in.json {
			e := in.newEvent("sent", m)
			if id := b.Sent.GetId(); len(id) == messageIDSize {
				e.ID = hex.EncodeToString(id)
			}
			e.To, e.Text = hex.EncodeToString(dest), b.Sent.GetText().GetBody()
			e.ToName = in.names.name(e.To)
			in.outJSON(key, e)
		} else {
			in.out(key, fmt.Sprintf("%s you to %s: %s", m.when, in.names.of(hex.EncodeToString(dest)), b.Sent.GetText().GetBody()))
		}
		return true
	case *spec.Content_Receipt:
		in.applyReceipt(from, from, false, b.Receipt)
		in.emitReceipt(m, b.Receipt)
		return false
	case *spec.Content_Typing:
		in.showTyping(m, b.Typing, "")
		return true
	case *spec.Content_Delete:
		conv := from
		if m.fromSelf(d) {
			conv = b.Delete.GetDestination()
		}
		return in.applyDelete(m, conv, false, "")
	}
	fmt.Fprintf(c.stderr, "pigeon: %s sent a kind of message this version of pigeon cannot show\n", in.names.short(from))
	return false
}

// showTyping prints a typing indicator (group: the group's name, "" for
// a one-to-one conversation).
func (in *inbox) showTyping(m *incoming, t *spec.Typing, group string) {
	if in.json {
		e := in.newEvent("typing", m)
		e.GroupName = group
		started := t.GetStarted()
		e.Typing = &started
		in.outJSON("", e)
		return
	}
	if group == "" {
		in.out("", fmt.Sprintf("%s %s %s", m.when, in.sender(m), typingText(t)))
		return
	}
	in.out("", fmt.Sprintf("%s [%s] %s %s", m.when, group, in.sender(m), typingText(t)))
}

// emitReceipt prints a delivered or read receipt from someone else, with
// -json only (people see receipts as marks in "pigeon history").
func (in *inbox) emitReceipt(m *incoming, r *spec.Receipt) {
	if !in.json || m.fromSelf(in.d) {
		return
	}
	var kind string
	switch r.GetType() {
	case spec.Receipt_TYPE_DELIVERED:
		kind = "delivered"
	case spec.Receipt_TYPE_READ:
		kind = "read"
	default:
		return
	}
	e := in.newEvent("receipt", m)
	e.Receipt, e.IDs = kind, hexIDs(r.GetIds())
	in.outJSON("", e)
}

func typingText(t *spec.Typing) string {
	if t.GetStarted() {
		return "is typing"
	}
	return "stopped typing"
}

// record adds a received message to its conversation and owes its sender
// a delivered receipt.
func (in *inbox) record(conv []byte, group bool, m *incoming, cm *chatMessage) {
	id := m.content.GetId()
	if len(id) != messageIDSize {
		return // an older client's message: nothing to refer to it by
	}
	cm.ID = hex.EncodeToString(id)
	cm.SentAt = m.content.GetSentAtMs()
	cm.At = time.Now().UnixMilli()
	if !m.fromSelf(in.d) {
		cm.From = hex.EncodeToString(m.env.Sender)
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
	if m.fromSelf(in.d) {
		return
	}
	k := receiptKey{to: string(m.env.Sender)}
	if group {
		k.group = string(conv)
	}
	in.receipts[k] = append(in.receipts[k], id)
}

// sendReceipts sends the delivered receipts owed, one message per sender
// and conversation. A receipt that cannot be sent is given up with a
// note: it only costs the sender a mark.
func (in *inbox) sendReceipts(ctx context.Context) {
	if len(in.receipts) == 0 {
		return
	}
	m, err := in.c.messenger()
	if err != nil {
		fmt.Fprintf(in.c.stderr, "pigeon: delivered receipts not sent: %v\n", err)
		return
	}
	for k, ids := range in.receipts {
		delete(in.receipts, k)
		var group []byte
		if k.group != "" {
			group = []byte(k.group)
		}
		if err := m.SendDeliveredReceipt(ctx, []byte(k.to), group, bytes.Join(ids, nil)); err != nil {
			fmt.Fprintf(in.c.stderr, "pigeon: delivered receipt to %s not sent: %v\n", short([]byte(k.to)), in.c.sendError([]byte(k.to), err))
		}
	}
}

// applyReceipt marks this account's messages in a conversation as
// delivered to, or read by, the receipt's sender.
func (in *inbox) applyReceipt(from, conv []byte, group bool, r *spec.Receipt) {
	if string(from) == string(in.d.AccountID()) {
		return
	}
	who := hex.EncodeToString(from)
	read := r.GetType() == spec.Receipt_TYPE_READ
	if !read && r.GetType() != spec.Receipt_TYPE_DELIVERED {
		return
	}
	err := in.c.updateChat(conv, group, func(ch *chat) error {
		changed := false
		for _, id := range r.GetIds() {
			m := ch.find(hex.EncodeToString(id), "")
			if m == nil || !slices.Contains(m.To, who) {
				continue
			}
			changed = addOnce(&m.Delivered, who) || changed
			if read {
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
}

// applyDelete honours a delete for everyone of a message its sender sent
// in conversation conv, if it arrived within the limit. It reports
// whether it printed anything. groupName is the group's, "" for a
// one-to-one conversation.
func (in *inbox) applyDelete(m *incoming, conv []byte, group bool, groupName string) bool {
	c := in.c
	label := ""
	if groupName != "" {
		label = "[" + groupName + "] "
	}
	if len(conv) != 16 {
		return false
	}
	id := hex.EncodeToString(m.content.GetDelete().GetId())
	from := ""
	if !m.fromSelf(in.d) {
		from = hex.EncodeToString(m.env.Sender)
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
		case time.Since(time.UnixMilli(msg.At)) > in.deleteLimit:
			result = "late"
			return errUnchanged
		}
		msg.Deleted, msg.Text, msg.File = true, "", ""
		result = "deleted"
		return nil
	})
	switch {
	case err != nil:
		fmt.Fprintf(c.stderr, "pigeon: could not delete a message: %v\n", err)
	case result == "deleted" && in.json:
		in.unprint(msgKey(conv, from, m.content.GetDelete().GetId()))
		e := in.newEvent("delete", m)
		e.Deleted, e.GroupName = id, groupName
		in.outJSON("", e)
		return true
	case result == "deleted":
		// The message's own line, if this batch holds it, never shows.
		in.unprint(msgKey(conv, from, m.content.GetDelete().GetId()))
		in.out("", fmt.Sprintf("%s %s%s deleted a message", m.when, label, in.sender(m)))
		return true
	case result == "late":
		fmt.Fprintf(c.stderr, "pigeon: %s asked to delete a message older than the %v limit; it was kept\n", in.sender(m), in.deleteLimit)
	}
	return false
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
