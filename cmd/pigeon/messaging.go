package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pigeonhole/pigeonhole/spec"
)

// verboseFlag declares -v, which says how each message went out:
// sealed, or identified and why.
func verboseFlag(fs *flag.FlagSet, v *bool) {
	fs.BoolVar(v, "v", false, "say whether each message went sealed (the relay learns no sender) or identified, and why")
}

func (c *cli) send(ctx context.Context, args []string) error {
	fs := c.flagSet("send")
	verboseFlag(fs, &c.verbose)
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	args = fs.Args()
	if len(args) == 3 && args[1] == "--" { // pigeon send BOB -- -TEXT
		args = []string{args[0], args[2]}
	} else if len(args) == 2 && args[1] == "-" {
		text, err := c.readText()
		if err != nil {
			return err
		}
		args = []string{args[0], text}
	}
	if len(args) != 2 {
		return usagef(`pigeon send ACCOUNT|GROUP "TEXT" (or - to read it from stdin)`, "send needs an account id or a group and a text")
	}
	if err := checkText(args[1]); err != nil {
		return err
	}
	conv, err := c.resolve(args[0])
	if err != nil {
		return err
	}
	id, err := newMessageID()
	if err != nil {
		return err
	}
	content := &spec.Content{Id: id, Body: &spec.Content_Text{Text: &spec.Text{Body: args[1]}}}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	m, err := c.messenger()
	if err != nil {
		return err
	}
	if conv.group {
		return c.sendToGroup(ctx, m, conv, content, &chatMessage{Text: args[1]})
	}
	to := conv.id
	copyOf := &spec.Content{Body: &spec.Content_Sent{Sent: &spec.SentTranscript{Destination: to, Text: &spec.Text{Body: args[1]}, Id: id}}}
	res, err := m.SendContent(ctx, to, content, copyOf)
	if err != nil {
		return c.sendError(to, err)
	}
	c.sayHow(m.AccountID(), to, res)
	c.recordSent(to, false, content, &chatMessage{Text: args[1], To: []string{hex.EncodeToString(to)}})
	if res.OwnCopyFailed {
		// The message went out; only the other devices' copy failed.
		fmt.Fprintf(c.stderr, "pigeon: your other devices will not show this message: %s\n", res.OwnCopyError)
	}
	fmt.Fprintln(c.stdout, hex.EncodeToString(id))
	fmt.Fprintf(c.stderr, "pigeon: sent to %s (%d device%s)\n", c.names(m.AccountID()).short(to), res.Devices, plural(res.Devices))
	return nil
}

// messageIDSize is the length of Content.id.
const messageIDSize = 8

// newMessageID returns a new Content.id.
func newMessageID() ([]byte, error) {
	id := make([]byte, messageIDSize)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	return id, nil
}

// mustContent stamps c with the time and encodes it. Encoding a Content
// built here cannot fail.
func mustContent(c *spec.Content) []byte {
	if c.SentAtMs == 0 {
		c.SentAtMs = time.Now().UnixMilli()
	}
	b, err := proto.Marshal(c)
	if err != nil {
		panic(fmt.Sprintf("encode content: %v", err))
	}
	return b
}

// recordSent adds a message this device sent to its conversation, so
// receipts and deletes find it. A failure only costs the history.
func (c *cli) recordSent(conv []byte, group bool, content *spec.Content, m *chatMessage) {
	if len(content.GetId()) != messageIDSize {
		return // a copy from an older client: nothing to refer to it by
	}
	m.ID = hex.EncodeToString(content.GetId())
	m.SentAt = content.GetSentAtMs()
	m.At = time.Now().UnixMilli()
	err := c.updateChat(conv, group, func(ch *chat) error {
		ch.add(m)
		return nil
	})
	if err != nil {
		fmt.Fprintf(c.stderr, "pigeon: could not record the message in the history: %v\n", err)
	}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
