package messenger

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
	"github.com/pigeonhole/pigeonhole/spec"
)

// SendGroup sends c to every device of every member of group gid (this
// device aside; this account's other devices included), encrypted once
// with this device's sender key, in one multi-send. Member devices that
// lack the sender key get it pairwise first. When the relay says device
// lists are stale it meets the new devices, forgets removed ones (then
// makes a new sender key, so a removed device cannot read on) and sends
// again with the same client message id.
func (m *Messenger) SendGroup(ctx context.Context, gid []byte, c *Content) (*SendResult, error) {
	if c == nil || c.Text == "" {
		return nil, ErrEmpty
	}
	id, err := messageID(c)
	if err != nil {
		return nil, err
	}
	content := &spec.Content{Id: id, Body: &spec.Content_Text{Text: &spec.Text{Body: c.Text}}}
	res, err := m.groupSend(ctx, gid, content, id, false)
	if err != nil {
		return nil, err
	}
	res.ID = id
	return res, nil
}

// SendGroupTyping is SendTyping for a group.
func (m *Messenger) SendGroupTyping(ctx context.Context, gid []byte, started bool) (*SendResult, error) {
	seed, err := newClientMessageID()
	if err != nil {
		return nil, err
	}
	return m.groupSend(ctx, gid, &spec.Content{Body: &spec.Content_Typing{Typing: &spec.Typing{Started: started}}}, seed, true)
}

// groupSend encrypts content once with this device's sender key and
// sends it to every member device. To each other member account whose
// access key this device holds it goes sealed: one sealed_send per
// account, each with a client message id of its own, on one connection
// that never authenticates (protocol.md, "What the relay still sees").
// The rest (this account's other devices, accounts without a known key
// or whose key the relay refused) go identified in one multi_send. The
// client message ids are derived from seed (the message id, or random
// bytes), which the relay never sees, so a retried send lands once and
// the relay cannot tie the parts of one send together by their ids.
// When the relay says device lists are stale it meets the new devices,
// forgets removed ones (then makes a new sender key) and tries again for
// the accounts not reached yet.
func (m *Messenger) groupSend(ctx context.Context, gid []byte, content *spec.Content, seed []byte, online bool) (*SendResult, error) {
	if len(gid) != e2e.GroupIDSize {
		return nil, ErrBadAccount
	}
	cmid := clientMessageID("group", seed, gid)
	content.GroupId = gid
	content.AccessKey = m.ownAccessKey()
	plain := encode(content)
	s := &sealer{m: m}
	defer s.close()
	me := hex.EncodeToString(m.store.AccountID())
	why := map[string]string{} // accounts that go identified, and why
	done := map[string]bool{}  // accounts the message reached
	res := &SendResult{}
	var reasons []string
	var wire []byte
	for attempt := 0; ; attempt++ {
		g, err := m.loadGroup(gid)
		if err != nil {
			return nil, err
		}
		if g == nil {
			return nil, ErrNoGroup
		}
		if g.Removed {
			return nil, ErrNotMember
		}
		targets, err := m.groupTargets(ctx, g.Members)
		if err != nil {
			return nil, err
		}
		if len(targets) == 0 {
			return nil, ErrNoRecipients
		}
		if wire == nil {
			wire, err = m.encryptForGroup(ctx, gid, targets, plain)
			if errors.Is(err, errRetarget) && attempt < maxStaleRetries {
				continue
			}
			if err != nil {
				return nil, err
			}
		}
		messages := func(t target) []client.DeviceMessage {
			out := make([]client.DeviceMessage, 0, len(t.devices))
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
				if key = m.contactAccessKey(t.acct); key == nil {
					why[h] = ReasonNoAccessKey
				}
			}
			if key == nil {
				identified = append(identified, t)
				continue
			}
			sr, err := s.send(ctx, &client.SealedMessage{Recipient: t.acct, AccessKey: key,
				ClientMessageID: clientMessageID("sealed", seed, append(slices.Clone(gid), t.acct...)), Devices: messages(t), OnlineOnly: online})
			if r := m.unsealable(t.acct, err); r != "" {
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
				return nil, fmt.Errorf("messenger: send: %w", err)
			}
			done[h] = true
			res.SealedAccounts++
			res.Devices += len(t.devices)
			res.Reached += sr.Reached
			res.Duplicate = res.Duplicate || sr.Duplicate
			res.TimestampMillis = max(res.TimestampMillis, sr.TimestampMillis)
		}
		if len(stale) == 0 && len(identified) > 0 {
			// With a stale account above, the ciphertext is made again
			// first (new devices need the sender key): these wait.
			mm := &client.MultiMessage{ClientMessageID: cmid, OnlineOnly: online}
			for _, t := range identified {
				mm.Accounts = append(mm.Accounts, client.AccountMessage{Recipient: t.acct, Devices: messages(t)})
			}
			var sr *client.SendResult
			err := m.conn(ctx, func(c *client.Conn) error {
				var err error
				sr, err = c.SendMulti(ctx, mm)
				return err
			})
			var re *client.Error
			switch {
			case errors.As(err, &re) && spec.Code(re.Code) == spec.CodeStaleDevices:
				stale, staleErr = re.Stale, err
			case err != nil:
				return nil, fmt.Errorf("messenger: send: %w", err)
			default:
				res.Reached += sr.Reached
				res.Duplicate = res.Duplicate || sr.Duplicate
				res.TimestampMillis = max(res.TimestampMillis, sr.TimestampMillis)
				for _, t := range identified {
					h := hex.EncodeToString(t.acct)
					done[h] = true
					res.Devices += len(t.devices)
					if h != me {
						res.IdentifiedAccounts++
						if !slices.Contains(reasons, why[h]) {
							reasons = append(reasons, why[h])
						}
					}
				}
			}
		}
		if len(stale) > 0 {
			if attempt >= maxStaleRetries {
				return nil, fmt.Errorf("messenger: send: %w", staleErr)
			}
			rotate := false
			for _, sa := range stale {
				if err := m.meetDevices(ctx, sa.AccountID, sa.Missing, sa.Extra); err != nil {
					return nil, err
				}
				rotate = rotate || len(sa.Extra) > 0
			}
			// Encrypt again: encryptForGroup gives the sender key to the
			// new devices first. The refused ciphertext was never stored.
			wire = nil
			if rotate {
				// A device left a member account: it must not read what
				// follows.
				err := m.updateGroup(gid, func(p **group) error {
					if *p == nil {
						return errUnchanged
					}
					return m.rotateLocked(gid, *p, nil)
				})
				if err != nil {
					return nil, err
				}
			}
			continue
		}
		res.IdentifiedReason = strings.Join(reasons, "; ")
		if online {
			if err := m.countOnline(gid); err != nil {
				return nil, err
			}
		}
		return res, nil
	}
}

// groupTargets lists the devices of each member account this device has
// sessions with, starting sessions with accounts it has never written
// to, and this account's other devices if it has any.
func (m *Messenger) groupTargets(ctx context.Context, members []string) ([]target, error) {
	me := m.store.AccountID()
	var out []target
	for _, h := range members {
		acct, err := hex.DecodeString(h)
		if err != nil {
			return nil, fmt.Errorf("messenger: group record: %w", err)
		}
		ids, err := m.store.SessionDevices(acct)
		if err != nil {
			return nil, fmt.Errorf("messenger: %w", err)
		}
		ids = m.recipients(acct, ids)
		if len(ids) == 0 {
			if slices.Equal(acct, me) {
				if ok, err := m.hasOtherDevices(ctx); err != nil {
					return nil, err
				} else if !ok {
					continue // no other devices of ours to send to
				}
			}
			if ids, err = m.startSessions(ctx, acct, nil); errors.Is(err, ErrNoRecipients) && slices.Equal(acct, me) {
				continue
			} else if err != nil {
				return nil, err
			}
		}
		out = append(out, target{acct: acct, devices: ids})
	}
	return out, nil
}

// encryptForGroup gives this device's sender key to the target devices
// that lack it (pairwise, one send per account), then encrypts plain
// with it. It encrypts under the group lock, after checking that every
// target got the key now in use, so a rotation at the same time (a
// member removed, seen by the receive loop) cannot slip between;
// errRetarget if one did.
func (m *Messenger) encryptForGroup(ctx context.Context, gid []byte, targets []target, plain []byte) ([]byte, error) {
	g, err := m.loadGroup(gid)
	if err != nil {
		return nil, err
	}
	if g == nil {
		return nil, ErrNoGroup
	}
	gen := g.KeyGen
	var need [][]byte
	for _, t := range targets {
		if slices.ContainsFunc(t.devices, func(id uint32) bool { return !slices.Contains(g.KeySentTo, deviceKey(t.acct, id)) }) {
			need = append(need, t.acct)
		}
	}
	if len(need) > 0 {
		skd, err := m.store.SenderKeyDistribution(ctx, gid)
		if err != nil {
			return nil, fmt.Errorf("messenger: %w", err)
		}
		msg := encode(&spec.Content{GroupId: gid, Body: &spec.Content_SenderKey{SenderKey: &spec.SenderKey{Distribution: skd}}})
		me := hex.EncodeToString(m.store.AccountID())
		for _, acct := range need {
			if h := hex.EncodeToString(acct); h == me || g.Admin == me {
				// Devices linked since the group's state went out get it
				// now: from the admin, or from their own account. Those
				// that have it ignore it.
				if err := m.deliverNew(ctx, acct, groupState(gid, g)); err != nil {
					return nil, err
				}
			}
			if err := m.deliverNew(ctx, acct, msg); err != nil {
				return nil, err
			}
			ids, err := m.store.SessionDevices(acct)
			if err != nil {
				return nil, fmt.Errorf("messenger: %w", err)
			}
			err = m.updateGroup(gid, func(p **group) error {
				if *p == nil || (*p).KeyGen != gen {
					return errUnchanged
				}
				for _, id := range m.recipients(acct, ids) {
					if k := deviceKey(acct, id); !slices.Contains((*p).KeySentTo, k) {
						(*p).KeySentTo = append((*p).KeySentTo, k)
					}
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
	}
	var ct []byte
	err = m.updateGroup(gid, func(p **group) error {
		g := *p
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
		ct, err = m.store.GroupEncrypt(ctx, gid, plain)
		if errors.Is(err, e2e.ErrNoSenderKey) {
			// The key is gone (a rotation that did not finish): start a
			// new one, to be given out again.
			g.KeyGen++
			g.KeySentTo = nil
			return nil
		}
		if err != nil {
			return fmt.Errorf("messenger: %w", err)
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

// deliverNew is deliver with a fresh client message id.
func (m *Messenger) deliverNew(ctx context.Context, to, plain []byte) error {
	cmid, err := newClientMessageID()
	if err != nil {
		return err
	}
	_, err = m.deliver(ctx, to, plain, cmid, false)
	return err
}

// countOnline counts an online-only group send and rotates the sender key
// when maxOnlineSends is reached.
func (m *Messenger) countOnline(gid []byte) error {
	return m.updateGroup(gid, func(p **group) error {
		g := *p
		if g == nil {
			return errUnchanged
		}
		g.OnlineSends++
		if g.OnlineSends >= maxOnlineSends {
			return m.rotateLocked(gid, g, nil)
		}
		return nil
	})
}
