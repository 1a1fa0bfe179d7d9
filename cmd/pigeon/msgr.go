package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/client/messenger"
)

// messenger opens this device's Messenger, once per command (run closes
// it): send-only, so a "pigeon listen" of the same device keeps
// receiving, and failing at once when the relay is down. Group state
// stays in the conversation files (chatGroups).
func (c *cli) messenger() (*messenger.Messenger, error) {
	if c.m != nil {
		return c.m, nil
	}
	if _, err := c.device(); err != nil {
		return nil, err
	}
	opts, err := c.options()
	if err != nil {
		return nil, err
	}
	m, err := c.messengerFor(opts)
	if err != nil {
		return nil, err
	}
	c.m = m
	return m, nil
}

// sendError words a failed send to account to (nil for a group) for
// people: the relay's refusals and an unreachable relay as the rest of
// pigeon words them.
func (c *cli) sendError(to []byte, err error) error {
	var re *client.Error
	switch {
	case errors.Is(err, messenger.ErrUnreachable) || errors.Is(err, client.ErrFingerprint):
		opts, oerr := c.options()
		if oerr != nil {
			return oerr
		}
		return unreachableError(opts, dialError(err))
	case errors.Is(err, messenger.ErrIdentityChanged) && to != nil:
		return &identityChangedError{account: to}
	case errors.Is(err, messenger.ErrNoRecipients) && to != nil:
		if d, derr := c.device(); derr == nil && slices.Equal(to, d.AccountID()) {
			return failf("", "this account has no other devices")
		}
		return failf("", "%s has no other devices to send to", short(to))
	case errors.As(err, &re):
		what := "send"
		switch {
		case re.CodeName() == "UNKNOWN_DEVICE":
			what = "authenticate"
		case strings.HasPrefix(err.Error(), "messenger: fetch keys"):
			what = "fetch keys"
		case strings.HasPrefix(err.Error(), "messenger: list devices"):
			what = "list devices"
		}
		return relayError(what, err)
	}
	return err
}

// dialError is the dial's error in a Messenger's *UnreachableError, err
// itself if there is none.
func dialError(err error) error {
	var ue *messenger.UnreachableError
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// sayHow prints, with -v, how a one-to-one send to account to went out.
func (c *cli) sayHow(me, to []byte, res *messenger.SendResult) {
	if !c.verbose || slices.Equal(me, to) {
		return
	}
	who := c.names(me).short(to)
	if res.Sealed {
		fmt.Fprintf(c.stderr, "pigeon: sent sealed to %s\n", who)
	} else {
		fmt.Fprintf(c.stderr, "pigeon: sent identified to %s (%s)\n", who, res.IdentifiedReason)
	}
}

// chatGroups keeps the Messenger's group state in the conversation
// files (chat.Group), under their lock, where groupin.go and "pigeon
// group list" read it.
type chatGroups struct{ c *cli }

func (g chatGroups) LoadGroup(gid []byte) ([]byte, error) {
	ch, err := g.c.readChat(gid, true)
	if err != nil || ch.Group == nil {
		return nil, err
	}
	return json.Marshal(ch.Group)
}

func (g chatGroups) GroupIDs() ([][]byte, error) {
	chats, err := g.c.groupChats()
	if err != nil {
		return nil, err
	}
	ids := make([][]byte, 0, len(chats))
	for id := range chats {
		ids = append(ids, mustHex(id))
	}
	return ids, nil
}

func (g chatGroups) UpdateGroup(gid []byte, f func([]byte) ([]byte, error)) error {
	return g.c.updateChat(gid, true, func(ch *chat) error {
		var old []byte
		if ch.Group != nil {
			var err error
			if old, err = json.Marshal(ch.Group); err != nil {
				return err
			}
		}
		b, err := f(old)
		if err != nil {
			return err
		}
		if b == nil {
			return errUnchanged
		}
		gi := new(groupInfo) // the same fields as the Messenger's record
		if err := json.Unmarshal(b, gi); err != nil {
			return err
		}
		ch.Group = gi
		return nil
	})
}
