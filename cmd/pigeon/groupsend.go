package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/pigeonhole/pigeonhole/relay/client/messenger"
	"github.com/pigeonhole/pigeonhole/spec"
)

// sendToGroup sends a message to a group, records it and says so.
func (c *cli) sendToGroup(ctx context.Context, m *messenger.Messenger, conv *conversation, content *spec.Content, rec *chatMessage) error {
	res, err := c.groupSend(ctx, m, conv, content)
	if err != nil {
		return err
	}
	rec.To = c.otherMembers(m, conv.id)
	c.recordSent(conv.id, true, content, rec)
	fmt.Fprintln(c.stdout, hex.EncodeToString(content.GetId()))
	if c.verbose {
		if line := groupHow(res); line != "" {
			fmt.Fprintln(c.stderr, line)
		}
	}
	fmt.Fprintf(c.stderr, "pigeon: sent to %q (%d device%s)\n", conv.name, res.Devices, plural(res.Devices))
	return nil
}

// groupSend sends content to group conv through the Messenger (sealed
// to each member account whose access key this device holds, identified
// to the rest) and words its failures for people.
func (c *cli) groupSend(ctx context.Context, m *messenger.Messenger, conv *conversation, content *spec.Content) (*messenger.SendResult, error) {
	res, err := m.SendGroupContent(ctx, conv.id, content)
	switch {
	case errors.Is(err, messenger.ErrNoGroup):
		return nil, failf(`"pigeon group list" shows your groups`, "no such group")
	case errors.Is(err, messenger.ErrNotMember):
		return nil, failf("", "you are no longer a member of %q", conv.name)
	case errors.Is(err, messenger.ErrNoRecipients):
		return nil, failf("", "%q has nobody else in it", conv.name)
	case err != nil:
		return nil, c.sendError(nil, err)
	}
	return res, nil
}

// otherMembers is the group's member accounts other than this one.
func (c *cli) otherMembers(m *messenger.Messenger, gid []byte) []string {
	ch, err := c.readChat(gid, true)
	if err != nil || ch.Group == nil {
		return nil
	}
	me := hex.EncodeToString(m.AccountID())
	var out []string
	for _, a := range ch.Group.Members {
		if a != me {
			out = append(out, a)
		}
	}
	return out
}

// groupHow is the -v line that says how a group send went out, "" when
// it went to no other account (only this account's own devices).
func groupHow(r *messenger.SendResult) string {
	s, n, why := r.SealedAccounts, r.IdentifiedAccounts, r.IdentifiedReason
	switch {
	case s > 0 && n > 0:
		return fmt.Sprintf("pigeon: group message sent sealed to %d account%s, identified to %d (%s)", s, plural(s), n, why)
	case s > 0:
		return fmt.Sprintf("pigeon: group message sent sealed to %d account%s", s, plural(s))
	case n > 0:
		return fmt.Sprintf("pigeon: group message sent identified to %d account%s (%s)", n, plural(n), why)
	}
	return ""
}
