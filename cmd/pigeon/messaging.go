package main

import (
	"context"
	"crypto/rand"
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

func (c *cli) send(ctx context.Context, args []string) error {
	if len(args) != 2 {
		return failf(`pigeon send ACCOUNT "TEXT"`, "send needs an account id and a text")
	}
	to, err := parseAccount(args[0])
	if err != nil {
		return err
	}
	plain, err := proto.Marshal(&spec.Content{SentAtMs: time.Now().UnixMilli(), Body: &spec.Content_Text{Text: &spec.Text{Body: args[1]}}})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	d, conn, err := c.sendOnly(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	n, err := deliver(ctx, conn, d, to, plain)
	if err != nil {
		return err
	}
	if err := c.syncCopy(ctx, conn, d, to, args[1]); err != nil {
		// The message went out; only the other devices' copy failed.
		fmt.Fprintf(c.stderr, "pigeon: your other devices will not show this message: %v\n", err)
	}
	_ = conn.Finish(ctx)
	fmt.Fprintf(c.stderr, "pigeon: sent to %s (%d device%s)\n", short(to), n, plural(n))
	return nil
}

// deliver encrypts plain for every device of account to (this device
// aside) and sends it, meeting new devices and forgetting removed ones
// when the relay says the list is stale. It returns how many devices it
// went to.
func deliver(ctx context.Context, conn *client.Conn, d *e2e.Device, to, plain []byte) (int, error) {
	msgID := make([]byte, spec.ClientMessageIDSize)
	if _, err := rand.Read(msgID); err != nil {
		return 0, err
	}
	devices, err := d.SessionDevices(to)
	if err != nil {
		return 0, err
	}
	devices = recipients(d, to, devices)
	for attempt := 0; ; attempt++ {
		if len(devices) == 0 {
			if devices, err = startSessions(ctx, conn, d, to, nil); err != nil {
				return 0, err
			}
		}
		msgs, err := d.Encrypt(ctx, to, devices, plain)
		if err != nil {
			return 0, err
		}
		_, err = conn.Send(ctx, &client.Message{Recipient: to, ClientMessageID: msgID, Devices: msgs})
		var re *client.Error
		if errors.As(err, &re) && spec.Code(re.Code) == spec.CodeStaleDevices && attempt < maxStaleRetries {
			// The account linked or removed devices: forget the removed
			// ones, meet the new ones, and encrypt again.
			if err := d.ForgetDevices(to, re.Extra); err != nil {
				return 0, err
			}
			if len(re.Missing) > 0 {
				if _, err := startSessions(ctx, conn, d, to, re.Missing); err != nil {
					return 0, err
				}
			}
			if devices, err = d.SessionDevices(to); err != nil {
				return 0, err
			}
			devices = recipients(d, to, devices)
			continue
		}
		if err != nil {
			return 0, relayError("send", err)
		}
		break
	}
	return len(devices), nil
}

// syncCopy sends this account's other devices a transcript of a text sent
// to another account, so every device shows the conversation.
func (c *cli) syncCopy(ctx context.Context, conn *client.Conn, d *e2e.Device, to []byte, text string) error {
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
	plain, err := proto.Marshal(&spec.Content{SentAtMs: time.Now().UnixMilli(), Body: &spec.Content_Sent{Sent: &spec.SentTranscript{
		Destination: to, Text: &spec.Text{Body: text},
	}}})
	if err != nil {
		return err
	}
	_, err = deliver(ctx, conn, d, own, plain)
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
		return nil, failf(`if they reinstalled, check with them and run "pigeon verify"`, "%s's identity key changed; not sending", short(to))
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

// receive prints messages: what is queued (recv), or everything until
// interrupted (listen).
func (c *cli) receive(ctx context.Context, args []string, follow bool) error {
	fs := flag.NewFlagSet("listen", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	count := fs.Int("n", 0, "exit after printing this many messages (listen; 0: never)")
	fs.StringVar(&c.saveDir, "save", ".", "save received files in this `directory`")
	if err := fs.Parse(args); err != nil {
		return failf("", "usage")
	}
	if fs.NArg() != 0 {
		return failf("", "this command takes no arguments")
	}
	d, opts, creds, err := c.registered()
	if err != nil {
		return err
	}
	cleanStaleParts(c.saveDir, time.Now())
	if !follow {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
	}
	cl := client.New(opts, creds, 64)
	defer cl.Close()
	if follow {
		fmt.Fprintln(c.stderr, "pigeon: listening; Ctrl-C stops")
	}
	printed := 0
	for {
		ev, err := cl.Next(ctx)
		if err != nil {
			if ctx.Err() != nil && follow {
				c.finish(cl)
				return nil
			}
			return relayError("receive", err)
		}
		switch ev.Kind {
		case client.EventEnvelope:
			shown := c.show(ctx, d, cl, ev.Envelope)
			if err := cl.Ack(ev.Envelope.Seq); err != nil {
				return relayError("ack", err)
			}
			if shown {
				printed++
			}
			if *count > 0 && printed >= *count {
				c.finish(cl)
				return nil
			}
		case client.EventPreKeysLow:
			c.refill(ctx, cl, d, ev.PreKeysRemaining)
		case client.EventDevices:
			fmt.Fprintf(c.stderr, "pigeon: this account's devices are now %v; \"pigeon devices\" lists them\n", ev.DeviceIDs)
		case client.EventDrained:
			if !follow {
				c.finish(cl)
				return nil
			}
		}
	}
}

// finish ends the session so the relay makes our acks durable.
func (c *cli) finish(cl *client.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := cl.Conn(ctx)
	if err == nil {
		_ = conn.Finish(ctx)
	}
}

// show decrypts and prints one envelope and reports whether it printed
// a message. What cannot be decrypted is reported and acked all the
// same: it would never decrypt later.
func (c *cli) show(ctx context.Context, d *e2e.Device, cl *client.Client, env *client.Envelope) bool {
	plain, err := d.Decrypt(ctx, env)
	switch {
	case errors.Is(err, e2e.ErrDuplicate):
		return false
	case errors.Is(err, e2e.ErrIdentityChanged):
		fmt.Fprintf(c.stderr, "pigeon: dropped a message from %s: their identity key changed\npigeon: hint: check with them and run \"pigeon verify %x\"\n", short(env.Sender), env.Sender)
		return false
	case err != nil:
		fmt.Fprintf(c.stderr, "pigeon: could not decrypt a message from %s: %v\n", short(env.Sender), err)
		return false
	}
	var content spec.Content
	if err := proto.Unmarshal(plain, &content); err != nil {
		fmt.Fprintf(c.stderr, "pigeon: unreadable message from %s\n", short(env.Sender))
		return false
	}
	when := time.UnixMilli(content.GetSentAtMs()).Format("2006-01-02 15:04")
	if a := content.GetAttachment(); a != nil {
		c.saveAttachment(ctx, cl, env.Sender, a, when)
		return true
	}
	if sent := content.GetSent(); sent != nil && slices.Equal(env.Sender, d.AccountID()) {
		// A copy of what this account sent from another device.
		fmt.Fprintf(c.stdout, "%s you to %x: %s\n", when, sent.GetDestination(), sent.GetText().GetBody())
		return true
	}
	text := content.GetText()
	if text == nil {
		return false
	}
	fmt.Fprintf(c.stdout, "%s %x: %s\n", when, env.Sender, text.GetBody())
	return true
}

// refill uploads new one-time prekeys when the relay says they run low.
func (c *cli) refill(ctx context.Context, cl *client.Client, d *e2e.Device, remaining int) {
	if remaining >= initialPreKeys {
		return
	}
	pks, err := d.NewPreKeys(initialPreKeys - remaining)
	if err != nil {
		fmt.Fprintf(c.stderr, "pigeon: could not make new prekeys: %v\n", err)
		return
	}
	conn, err := cl.Conn(ctx)
	if err == nil {
		_, err = conn.UploadPreKeys(ctx, pks)
	}
	if err != nil {
		fmt.Fprintf(c.stderr, "pigeon: could not upload new prekeys: %v\n", err)
	}
}
