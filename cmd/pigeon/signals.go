package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/pigeonhole/pigeonhole/relay/client/messenger"
	"github.com/pigeonhole/pigeonhole/spec"
)

// typingFlags declares the flags of "pigeon typing".
func typingFlags(fs *flag.FlagSet) (stop *bool) {
	return fs.Bool("stop", false, "say typing stopped")
}

// typing sends a typing indicator, online-only: devices not connected
// now never see it, and nothing is stored or pushed.
func (c *cli) typing(ctx context.Context, args []string) error {
	fs := c.flagSet("typing")
	stop := typingFlags(fs)
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	if fs.NArg() != 1 {
		return usagef("pigeon typing [-stop] ACCOUNT|GROUP", "typing needs an account id or a group")
	}
	conv, err := c.resolve(fs.Arg(0))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	m, err := c.messenger()
	if err != nil {
		return err
	}
	var res *messenger.SendResult
	if conv.group {
		res, err = c.groupSend(ctx, m, conv, &spec.Content{Body: &spec.Content_Typing{Typing: &spec.Typing{Started: !*stop}}})
	} else if res, err = m.SendTyping(ctx, conv.id, !*stop); err != nil {
		err = c.sendError(conv.id, err)
	}
	if err != nil {
		return err
	}
	devices, reached := res.Devices, res.Reached
	switch {
	case reached == devices:
		fmt.Fprintf(c.stderr, "pigeon: typing shown on %d of %d device%s\n", reached, devices, plural(devices))
	case reached == 0:
		fmt.Fprintf(c.stderr, "pigeon: typing shown on 0 of %d device%s (none is connected)\n", devices, plural(devices))
	default:
		fmt.Fprintf(c.stderr, "pigeon: typing shown on %d of %d devices (the others are not connected)\n", reached, devices)
	}
	return nil
}

// read sends read receipts for the messages of a conversation not marked
// read yet, as opening a chat does in an app.
func (c *cli) read(ctx context.Context, args []string) error {
	conv, ch, err := c.chatArg("read", args)
	if err != nil {
		return err
	}
	bySender := map[string][][]byte{}
	var order []string
	for _, m := range ch.Messages {
		if m.From == "" || m.ReadSent || m.Deleted {
			continue
		}
		if _, ok := bySender[m.From]; !ok {
			order = append(order, m.From)
		}
		bySender[m.From] = append(bySender[m.From], mustHex(m.ID))
	}
	if len(order) == 0 {
		fmt.Fprintln(c.stderr, "pigeon: nothing unread")
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	m, err := c.messenger()
	if err != nil {
		return err
	}
	var group []byte
	if conv.group {
		group = conv.id
	}
	n := 0
	for _, from := range order {
		if err := m.SendReadReceipt(ctx, mustHex(from), group, bytes.Join(bySender[from], nil)); err != nil {
			return c.sendError(mustHex(from), err)
		}
		ids := bySender[from]
		err := c.updateChat(conv.id, conv.group, func(ch *chat) error {
			for _, id := range ids {
				if m := ch.find(hex.EncodeToString(id), from); m != nil {
					m.ReadSent = true
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		n += len(ids)
	}
	fmt.Fprintf(c.stderr, "pigeon: marked %d message%s read\n", n, plural(n))
	return nil
}

// deleteFlags declares the flags of "pigeon delete".
func deleteFlags(fs *flag.FlagSet) (limit *time.Duration) {
	return fs.Duration("limit", defaultDeleteLimit, "refuse messages sent longer ago than this `duration` (recipients apply their own limit too)")
}

// deleteForEveryone asks the recipients of a message this account sent
// to delete it.
func (c *cli) deleteForEveryone(ctx context.Context, args []string) error {
	fs := c.flagSet("delete")
	limit := deleteFlags(fs)
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	if fs.NArg() != 2 {
		return usagef(`pigeon delete ACCOUNT|GROUP MESSAGE_ID ("pigeon history" shows the ids)`, "delete needs a conversation and a message id")
	}
	conv, err := c.resolve(fs.Arg(0))
	if err != nil {
		return err
	}
	id := strings.ToLower(fs.Arg(1))
	ch, err := c.readChat(conv.id, conv.group)
	if err != nil {
		return err
	}
	m := ch.find(id, "")
	switch {
	case m == nil:
		return failf(`"pigeon history" shows the ids of the messages you sent`, "you sent no message %q in this conversation", id)
	case m.Deleted:
		return failf("", "that message is deleted already")
	case time.Since(time.UnixMilli(m.At)) > *limit:
		return failf("", "that message is older than the %v limit for deleting it for everyone", *limit)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	msgr, err := c.messenger()
	if err != nil {
		return err
	}
	if conv.group {
		_, err = c.groupSend(ctx, msgr, conv, &spec.Content{Body: &spec.Content_Delete{Delete: &spec.Delete{Id: mustHex(id)}}})
	} else {
		var res *messenger.SendResult
		if res, err = msgr.SendDelete(ctx, conv.id, mustHex(id)); err != nil {
			err = c.sendError(conv.id, err)
		} else if res.OwnCopyFailed {
			fmt.Fprintf(c.stderr, "pigeon: your other devices still show the message: %s\n", res.OwnCopyError)
		}
	}
	if err != nil {
		return err
	}
	err = c.updateChat(conv.id, conv.group, func(ch *chat) error {
		if m := ch.find(id, ""); m != nil {
			m.Deleted, m.Text, m.File = true, "", ""
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(c.stderr, "pigeon: deleted for everyone")
	return nil
}

// history prints a conversation as this device has it, with the ids that
// "pigeon delete" takes and the marks of the messages this account sent.
func (c *cli) history(args []string) error {
	_, ch, err := c.chatArg("history", args)
	if err != nil {
		return err
	}
	n := c.contacts()
	for _, m := range ch.Messages {
		who := m.From
		if who == "" {
			who = "you"
		} else if name := n.byAccount(who); name != "" {
			who = name
		}
		body := m.Text
		if m.File != "" {
			body = "file " + m.File
		}
		if m.Deleted {
			body = "(deleted)"
		}
		line := fmt.Sprintf("%s %s %s: %s", m.ID, time.UnixMilli(m.SentAt).Format("2006-01-02 15:04"), who, body)
		if m.From == "" && !m.Deleted {
			line += " [" + m.marks() + "]"
		}
		fmt.Fprintln(c.stdout, line)
	}
	return nil
}

// chatArg reads the one argument of a command that works on a
// conversation, and the conversation as stored.
func (c *cli) chatArg(cmd string, args []string) (*conversation, *chat, error) {
	if len(args) != 1 {
		return nil, nil, usagef("pigeon "+cmd+" ACCOUNT|GROUP", "%s needs an account id or a group", cmd)
	}
	conv, err := c.resolve(args[0])
	if err != nil {
		return nil, nil, err
	}
	ch, err := c.readChat(conv.id, conv.group)
	if err != nil {
		return nil, nil, err
	}
	return conv, ch, nil
}
