package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
	"github.com/pigeonhole/pigeonhole/spec"
)

// showGroup handles a message that belongs to a group: its state and
// sender keys (which come pairwise), and what members write (which comes
// encrypted with the sender's key).
func (in *inbox) showGroup(ctx context.Context, m *incoming) bool {
	c, d := in.c, in.d
	gid, from := m.content.GetGroupId(), m.env.Sender
	switch b := m.content.Body.(type) {
	case *spec.Content_GroupUpdate:
		if m.group {
			return false // only ever sent pairwise, by the admin
		}
		return in.applyGroupUpdate(m, b.GroupUpdate)
	case *spec.Content_SenderKey:
		if m.group {
			return false
		}
		// Kept even before the group's state arrives (members write to a
		// new member as soon as they learn of it); what it decrypts is
		// shown only from members.
		if err := d.ProcessSenderKeyDistribution(ctx, gid, from, m.env.SenderDevice, b.SenderKey.GetDistribution()); err != nil {
			fmt.Fprintf(c.stderr, "pigeon: refused a group key from %s: %v\n", short(from), err)
		}
		return false
	case *spec.Content_Receipt:
		in.applyReceipt(from, gid, true, b.Receipt)
		in.emitReceipt(m, b.Receipt)
		return false
	}
	ch, err := c.readChat(gid, true)
	if err != nil {
		fmt.Fprintf(c.stderr, "pigeon: %v\n", err)
		return false
	}
	g := ch.Group
	if g == nil || g.Removed || !slices.Contains(g.Members, hex.EncodeToString(from)) {
		fmt.Fprintf(c.stderr, "pigeon: dropped a group message from %s: they are not in a group with you\n", short(from))
		return false
	}
	label := "[" + g.Name + "] "
	switch b := m.content.Body.(type) {
	case *spec.Content_Text:
		rec := &chatMessage{Text: b.Text.GetBody()}
		if m.fromSelf(d) {
			// Sent from another device of this account: count receipts.
			me := hex.EncodeToString(d.AccountID())
			rec.To = slices.DeleteFunc(slices.Clone(g.Members), func(a string) bool { return a == me })
		}
		in.record(gid, true, m, rec)
		key := in.key(gid, m, m.content.GetId())
		if in.json {
			e := in.newEvent("message", m)
			e.GroupName, e.Text = g.Name, b.Text.GetBody()
			in.outJSON(key, e)
		} else {
			in.out(key, fmt.Sprintf("%s %s%s: %s", m.when, label, in.sender(m), b.Text.GetBody()))
		}
		return true
	case *spec.Content_Typing:
		in.showTyping(m, b.Typing, g.Name)
		return true
	case *spec.Content_Delete:
		return in.applyDelete(m, gid, true, g.Name)
	}
	fmt.Fprintf(c.stderr, "pigeon: %s sent a kind of group message this version of pigeon cannot show\n", short(from))
	return false
}

// applyGroupUpdate takes a group's new state. It counts only from the
// admin it names, or from another device of this account (which passes
// the state on to devices linked later), and only if the group id is
// bound to that admin (e2e.GroupIDMatches), so nobody else can be first
// to describe the admin's group. Later states need a higher revision.
// When members were removed, this device makes a new sender key and
// forgets theirs; when this account was removed, it forgets the group's
// keys.
func (in *inbox) applyGroupUpdate(m *incoming, u *spec.GroupUpdate) bool {
	c, d := in.c, in.d
	gid := m.content.GetGroupId()
	from, me := hex.EncodeToString(m.env.Sender), hex.EncodeToString(d.AccountID())
	admin := hex.EncodeToString(u.GetAdmin())
	members, ok := groupMembers(u.GetMembers())
	switch {
	case !ok || checkGroupName(u.GetName()) != nil || !slices.Contains(members, admin) || !e2e.GroupIDMatches(gid, u.GetAdmin(), u.GetSalt()):
		fmt.Fprintf(c.stderr, "pigeon: refused a malformed group update from %s\n", short(m.env.Sender))
		return false
	case from != admin && from != me:
		fmt.Fprintf(c.stderr, "pigeon: ignored a change to %q from %s: only its admin can change it\n", u.GetName(), short(m.env.Sender))
		return false
	}
	var what string
	var added, gone []string
	err := c.updateChat(gid, true, func(ch *chat) error {
		g := ch.Group
		switch {
		case g == nil && !slices.Contains(members, me):
			return errUnchanged // removed from a group this device never knew
		case g == nil:
			ch.Group = &groupInfo{Name: u.GetName(), Admin: admin, Salt: hex.EncodeToString(u.GetSalt()), Members: members, Revision: u.GetRevision()}
			what = "joined"
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
			what = "removed"
			return d.LeaveGroup(gid)
		case g.Removed:
			g.Removed = false
			what = "joined"
		default:
			what = "changed"
		}
		if len(gone) > 0 {
			return c.rotateLocked(d, gid, g, gone)
		}
		return nil
	})
	if err != nil {
		fmt.Fprintf(c.stderr, "pigeon: could not apply a group update: %v\n", err)
		return false
	}
	label, actor := "["+u.GetName()+"] ", in.names.of(admin)
	if in.json && what != "" {
		e := in.newEvent("group", m)
		e.GroupName, e.Change, e.Members = u.GetName(), what, len(members)
		e.Added, e.Removed = added, gone
		in.outJSON("", e)
		return true
	}
	shown := func(accts []string) string {
		out := make([]string, len(accts))
		for i, a := range accts {
			out[i] = in.names.of(a)
		}
		return strings.Join(out, ", ")
	}
	switch what {
	case "joined":
		in.out("", fmt.Sprintf("%s %s%s added you to the group (%d members)", m.when, label, actor, len(members)))
	case "removed":
		in.out("", fmt.Sprintf("%s %s%s removed you from the group", m.when, label, actor))
	case "changed":
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
		in.out("", fmt.Sprintf("%s %s%s %s", m.when, label, actor, strings.Join(parts, "; ")))
	default:
		return false
	}
	return true
}

// groupMembers checks and encodes a member list: account ids, none twice,
// at most maxGroupMembers.
func groupMembers(raw [][]byte) ([]string, bool) {
	if len(raw) == 0 || len(raw) > maxGroupMembers {
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
