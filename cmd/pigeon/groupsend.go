package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
	"github.com/pigeonhole/pigeonhole/spec"
)

// sendToGroup sends a message to a group, records it and says so.
func (c *cli) sendToGroup(ctx context.Context, d *e2e.Device, conn *client.Conn, conv *conversation, content *spec.Content, rec *chatMessage) error {
	res, err := c.groupSend(ctx, d, conn, conv.id, content, false)
	if err != nil {
		return err
	}
	rec.To = res.others
	c.recordSent(conv.id, true, content, rec)
	_ = conn.Finish(ctx)
	fmt.Fprintln(c.stdout, hex.EncodeToString(content.GetId()))
	if c.verbose {
		if line := res.how(); line != "" {
			fmt.Fprintln(c.stderr, line)
		}
	}
	fmt.Fprintf(c.stderr, "pigeon: sent to %q (%d device%s)\n", conv.name, res.devices, plural(res.devices))
	return nil
}

// groupResult is what a group send reached.
type groupResult struct {
	devices, reached int
	others           []string // the member accounts other than this one
	sealed           int      // member accounts it went to sealed
	identified       []string // why it went identified, per other member account
}

// how is the -v line that says how a group send went out, "" when it
// went to no other account (only this account's own devices).
func (r *groupResult) how() string {
	var why []string
	for _, w := range r.identified {
		if !slices.Contains(why, w) {
			why = append(why, w)
		}
	}
	n := len(r.identified)
	switch {
	case r.sealed > 0 && n > 0:
		return fmt.Sprintf("pigeon: group message sent sealed to %d account%s, identified to %d (%s)", r.sealed, plural(r.sealed), n, strings.Join(why, "; "))
	case r.sealed > 0:
		return fmt.Sprintf("pigeon: group message sent sealed to %d account%s", r.sealed, plural(r.sealed))
	case n > 0:
		return fmt.Sprintf("pigeon: group message sent identified to %d account%s (%s)", n, plural(n), strings.Join(why, "; "))
	}
	return ""
}

// target is one member account and the devices a group send names.
type target struct {
	acct    []byte
	devices []uint32
}

// groupSend encrypts content once with this device's sender key for the
// group and sends that one ciphertext to every device of every member
// (this device aside), first giving the sender key to the member devices
// that lack it. To each other member account whose access key this
// device holds it goes sealed: one sealed_send per account, each with a
// client_message_id of its own, on one connection that never
// authenticates (protocol.md, "What the relay still sees"). The rest
// (this account's other devices, accounts without a known key, or whose
// key the relay refused) go identified in one multi_send. When the relay
// says device lists are stale it meets the new devices, forgets removed
// ones (and then makes a new sender key, so a removed device cannot read
// on) and tries again, for the accounts not yet reached.
func (c *cli) groupSend(ctx context.Context, d *e2e.Device, conn *client.Conn, gid []byte, content *spec.Content, online bool) (*groupResult, error) {
	content.GroupId = gid
	plain := mustContent(content)
	msgID, err := newClientMessageID()
	if err != nil {
		return nil, err
	}
	s := &sealer{c: c, conn: conn, d: d}
	defer s.close()
	me := hex.EncodeToString(d.AccountID())
	sealedIDs := map[string][]byte{} // per account, kept across retries
	why := map[string]string{}       // accounts that go identified, and why
	done := map[string]bool{}        // accounts the message reached
	res := &groupResult{}
	var wire []byte
	for attempt := 0; ; attempt++ {
		ch, err := c.readChat(gid, true)
		if err != nil {
			return nil, err
		}
		g := ch.Group
		if g == nil {
			return nil, failf(`"pigeon group list" shows your groups`, "no such group")
		}
		if g.Removed {
			return nil, failf("", "you are no longer a member of %q", g.Name)
		}
		targets, err := groupTargets(ctx, d, conn, g.Members)
		if err != nil {
			return nil, err
		}
		if len(targets) == 0 {
			return nil, failf("", "%q has nobody else in it", g.Name)
		}
		if wire == nil {
			wire, err = c.encryptForGroup(ctx, d, conn, gid, targets, plain)
			if errors.Is(err, errRetarget) && attempt < maxStaleRetries {
				continue
			}
			if err != nil {
				return nil, err
			}
		}
		messages := func(t target) []client.DeviceMessage {
			var out []client.DeviceMessage
			for _, id := range t.devices {
				out = append(out, client.DeviceMessage{DeviceID: id, Type: e2e.TypeGroup, Content: wire})
			}
			return out
		}
		var stale []client.StaleAccount
		var staleErr error
		var identified []target
		for _, t := range targets {
			h := hex.EncodeToString(t.acct)
			if done[h] {
				continue
			}
			var key []byte
			if h != me && why[h] == "" {
				if key = c.contactAccessKey(t.acct); key == nil {
					why[h] = "no access key yet"
				}
			}
			if key == nil {
				identified = append(identified, t)
				continue
			}
			if sealedIDs[h] == nil {
				if sealedIDs[h], err = newClientMessageID(); err != nil {
					return nil, err
				}
			}
			sr, err := s.send(ctx, &client.SealedMessage{Recipient: t.acct, AccessKey: key, ClientMessageID: sealedIDs[h], Devices: messages(t), OnlineOnly: online})
			if r := c.unsealable(t.acct, err); r != "" {
				// Never stored: the same ciphertext goes identified.
				why[h] = r
				identified = append(identified, t)
				continue
			}
			var re *client.Error
			if errors.As(err, &re) && spec.Code(re.Code) == spec.CodeStaleDevices {
				stale = append(stale, client.StaleAccount{AccountID: t.acct, Missing: re.Missing, Extra: re.Extra})
				staleErr = err
				continue
			}
			if err != nil {
				return nil, relayError("send", err)
			}
			done[h] = true
			res.sealed++
			res.devices += len(t.devices)
			res.reached += sr.Reached
		}
		if len(stale) == 0 && len(identified) > 0 {
			// With a stale account above, the ciphertext is made again
			// first (new devices need the sender key): these wait.
			mm := &client.MultiMessage{ClientMessageID: msgID, OnlineOnly: online}
			for _, t := range identified {
				mm.Accounts = append(mm.Accounts, client.AccountMessage{Recipient: t.acct, Devices: messages(t)})
			}
			sr, err := conn.SendMulti(ctx, mm)
			var re *client.Error
			switch {
			case errors.As(err, &re) && spec.Code(re.Code) == spec.CodeStaleDevices:
				stale, staleErr = re.Stale, err
			case err != nil:
				return nil, relayError("send", err)
			default:
				res.reached += sr.Reached
				for _, t := range identified {
					h := hex.EncodeToString(t.acct)
					done[h] = true
					res.devices += len(t.devices)
					if h != me {
						res.identified = append(res.identified, why[h])
					}
				}
			}
		}
		if len(stale) > 0 {
			if attempt >= maxStaleRetries {
				return nil, relayError("send", staleErr)
			}
			rotate := false
			for _, sa := range stale {
				if err := meetDevices(ctx, conn, d, sa.AccountID, sa.Missing, sa.Extra); err != nil {
					return nil, err
				}
				if len(sa.Extra) > 0 {
					rotate = true
				}
			}
			// Encrypt again: encryptForGroup gives the sender key to the
			// new devices first. The refused ciphertext was never stored.
			wire = nil
			if rotate {
				// A device left a member account: it must not read what
				// follows.
				err := c.updateChat(gid, true, func(ch *chat) error {
					if ch.Group == nil {
						return errUnchanged
					}
					return c.rotateLocked(d, gid, ch.Group, nil)
				})
				if err != nil {
					return nil, err
				}
			}
			continue
		}
		if online {
			if err := c.countOnline(d, gid); err != nil {
				return nil, err
			}
		}
		for _, m := range g.Members {
			if m != me {
				res.others = append(res.others, m)
			}
		}
		return res, nil
	}
}

// newClientMessageID returns a fresh random client_message_id.
func newClientMessageID() ([]byte, error) {
	id := make([]byte, spec.ClientMessageIDSize)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	return id, nil
}

// groupTargets lists the devices of each member account this device has
// sessions with, starting sessions with accounts it has never written to,
// and this account's other devices if it has any.
func groupTargets(ctx context.Context, d *e2e.Device, conn *client.Conn, members []string) ([]target, error) {
	me := d.AccountID()
	var out []target
	for _, m := range members {
		acct := mustHex(m)
		ids, err := d.SessionDevices(acct)
		if err != nil {
			return nil, err
		}
		ids = recipients(d, acct, ids)
		if len(ids) == 0 {
			if string(acct) == string(me) {
				infos, err := conn.ListDevices(ctx)
				if err != nil {
					return nil, relayError("list devices", err)
				}
				if len(infos) < 2 {
					continue // no other devices of ours to send to
				}
			}
			if ids, err = startSessions(ctx, conn, d, acct, nil); err != nil {
				return nil, err
			}
		}
		out = append(out, target{acct: acct, devices: ids})
	}
	return out, nil
}

func deviceKey(acct []byte, id uint32) string {
	return hex.EncodeToString(acct) + "." + strconv.FormatUint(uint64(id), 10)
}

// errRetarget says the group's devices or sender key changed while a
// send was being prepared: work out the targets again.
var errRetarget = errors.New("the group's devices or key changed; try again")

// encryptForGroup gives this device's sender key to the target devices
// that lack it (pairwise, one send per account), then encrypts plain
// with it. It encrypts under the conversation lock, after checking that
// every target got the key now in use, so a rotation running at the same
// time (a member removed, seen by "pigeon listen") cannot slip between;
// errRetarget if one did.
func (c *cli) encryptForGroup(ctx context.Context, d *e2e.Device, conn *client.Conn, gid []byte, targets []target, plain []byte) ([]byte, error) {
	ch, err := c.readChat(gid, true)
	if err != nil {
		return nil, err
	}
	gen := ch.Group.KeyGen
	var need [][]byte
	for _, t := range targets {
		if slices.ContainsFunc(t.devices, func(id uint32) bool { return !slices.Contains(ch.Group.KeySentTo, deviceKey(t.acct, id)) }) {
			need = append(need, t.acct)
		}
	}
	if len(need) > 0 {
		skd, err := d.SenderKeyDistribution(ctx, gid)
		if err != nil {
			return nil, err
		}
		msg := mustContent(&spec.Content{GroupId: gid, Body: &spec.Content_SenderKey{SenderKey: &spec.SenderKey{Distribution: skd}}})
		me := hex.EncodeToString(d.AccountID())
		for _, acct := range need {
			if h := hex.EncodeToString(acct); h == me || ch.Group.Admin == me {
				// Devices linked since the group's state went out get it
				// now: from the admin, or from their own account. Those
				// that have it ignore it.
				if _, _, err := c.deliver(ctx, conn, d, acct, groupState(gid, ch.Group), false); err != nil {
					return nil, err
				}
			}
			if _, _, err := c.deliver(ctx, conn, d, acct, msg, false); err != nil {
				return nil, err
			}
			ids, err := d.SessionDevices(acct)
			if err != nil {
				return nil, err
			}
			err = c.updateChat(gid, true, func(ch *chat) error {
				if ch.Group == nil || ch.Group.KeyGen != gen {
					return errUnchanged
				}
				for _, id := range recipients(d, acct, ids) {
					addOnce(&ch.Group.KeySentTo, deviceKey(acct, id))
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
	}
	var ct []byte
	err = c.updateChat(gid, true, func(ch *chat) error {
		g := ch.Group
		if g == nil || g.KeyGen != gen {
			return errRetarget
		}
		for _, t := range targets {
			for _, id := range t.devices {
				if !slices.Contains(g.KeySentTo, deviceKey(t.acct, id)) {
					return errRetarget
				}
			}
		}
		var err error
		ct, err = d.GroupEncrypt(ctx, gid, plain)
		if errors.Is(err, e2e.ErrNoSenderKey) {
			// The key is gone (a rotation that did not finish): start a
			// new one, to be given out again.
			g.KeyGen++
			g.KeySentTo = nil
			return nil
		}
		if err != nil {
			return err
		}
		return errUnchanged
	})
	if err != nil {
		return nil, err
	}
	if ct == nil {
		return nil, errRetarget
	}
	return e2e.GroupContent(gid, ct), nil
}

// maxOnlineSends is how many online-only messages a device sends under one
// sender key before it makes a new one. Devices that were offline never
// see those messages, and libsignal refuses a message more than 2,000
// iterations ahead of the last one a device saw; the new key reaches them
// pairwise before the next group message.
const maxOnlineSends = 1000

// countOnline counts an online-only group send and rotates the sender key
// when maxOnlineSends is reached.
func (c *cli) countOnline(d *e2e.Device, gid []byte) error {
	return c.updateChat(gid, true, func(ch *chat) error {
		g := ch.Group
		if g == nil {
			return errUnchanged
		}
		g.OnlineSends++
		if g.OnlineSends >= maxOnlineSends {
			return c.rotateLocked(d, gid, g, nil)
		}
		return nil
	})
}
