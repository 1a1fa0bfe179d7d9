package main

import (
	"context"
	"crypto/rand"
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

// maxStaleRetries bounds how often a send refetches a changed device list.
const maxStaleRetries = 3

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
	d, conn, err := c.sendOnly(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if conv.group {
		return c.sendToGroup(ctx, d, conn, conv, content, &chatMessage{Text: args[1]})
	}
	to := conv.id
	n, _, err := c.deliver(ctx, conn, d, to, mustContent(content), false)
	if err != nil {
		return err
	}
	c.recordSent(to, false, content, &chatMessage{Text: args[1], To: []string{hex.EncodeToString(to)}})
	if err := c.syncCopy(ctx, conn, d, to, id, args[1]); err != nil {
		// The message went out; only the other devices' copy failed.
		fmt.Fprintf(c.stderr, "pigeon: your other devices will not show this message: %v\n", err)
	}
	_ = conn.Finish(ctx)
	fmt.Fprintln(c.stdout, hex.EncodeToString(id))
	fmt.Fprintf(c.stderr, "pigeon: sent to %s (%d device%s)\n", c.names(d.AccountID()).short(to), n, plural(n))
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

// meetDevices brings this device's sessions with an account in step with
// what the relay said: it forgets the extra devices and starts sessions
// with the missing ones.
func meetDevices(ctx context.Context, conn *client.Conn, d *e2e.Device, to []byte, missing, extra []uint32) error {
	if err := d.ForgetDevices(to, extra); err != nil {
		return err
	}
	if len(missing) > 0 {
		if _, err := startSessions(ctx, conn, d, to, missing); err != nil {
			return err
		}
	}
	return nil
}

// syncCopy sends this account's other devices a transcript of a text sent
// to another account, so every device shows the conversation.
func (c *cli) syncCopy(ctx context.Context, conn *client.Conn, d *e2e.Device, to, id []byte, text string) error {
	return c.toOwnDevices(ctx, conn, d, to, &spec.Content{Body: &spec.Content_Sent{Sent: &spec.SentTranscript{
		Destination: to, Text: &spec.Text{Body: text}, Id: id,
	}}})
}

// toOwnDevices sends content to this account's other devices, if it has
// any, about a message to account to (none when to is this account).
func (c *cli) toOwnDevices(ctx context.Context, conn *client.Conn, d *e2e.Device, to []byte, content *spec.Content) error {
	own := d.AccountID()
	if slices.Equal(to, own) {
		return nil
	}
	infos, err := conn.ListDevices(ctx)
	if err != nil {
		return relayError("list devices", err)
	}
	if len(infos) < 2 {
		return nil
	}
	_, _, err = c.deliver(ctx, conn, d, own, mustContent(content), false)
	return err
}

// startSessions fetches an account's keys and starts sessions with the
// named devices (all when nil). It returns the devices it has sessions
// with now.
func startSessions(ctx context.Context, conn *client.Conn, d *e2e.Device, to []byte, only []uint32) ([]uint32, error) {
	keys, err := conn.FetchKeys(ctx, to)
	if err != nil {
		return nil, relayError("fetch keys", err)
	}
	if only == nil && slices.Equal(to, d.AccountID()) {
		// Never a session with this device itself (it would spend one of
		// its own prekeys).
		for _, b := range keys.Devices {
			if b.DeviceID != d.DeviceID() {
				only = append(only, b.DeviceID)
			}
		}
		if len(only) == 0 {
			return nil, failf("", "this account has no other devices")
		}
	}
	if err := d.StartSessions(ctx, keys, only); errors.Is(err, e2e.ErrIdentityChanged) {
		return nil, &identityChangedError{account: to}
	} else if err != nil {
		return nil, err
	}
	ids := make([]uint32, len(keys.Devices))
	for i, b := range keys.Devices {
		ids[i] = b.DeviceID
	}
	ids = recipients(d, to, ids)
	if len(ids) == 0 {
		return nil, failf("", "%s has no other devices to send to", short(to))
	}
	return ids, nil
}

// recipients drops this device from a send to its own account: the relay
// expects a send to one's own account to name only the other devices.
func recipients(d *e2e.Device, to []byte, ids []uint32) []uint32 {
	if !slices.Equal(to, d.AccountID()) {
		return ids
	}
	return slices.DeleteFunc(ids, func(id uint32) bool { return id == d.DeviceID() })
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
