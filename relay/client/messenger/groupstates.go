package messenger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/pigeonhole/pigeonhole/spec"
)

// GroupStates keeps the groups' state records somewhere of a program's
// own (Go surface), in place of the store's Records: cmd/pigeon keeps
// them in its conversation files, locked across processes, so that a
// send and a running "pigeon listen" change them in turn. A record is
// JSON with the fields name, admin, salt, members (account ids in hex),
// revision, removed, key_gen, key_sent_to and online_sends; a program
// keeps the fields it does not know as they are.
type GroupStates interface {
	// LoadGroup returns the group's record, nil if there is none.
	LoadGroup(groupID []byte) ([]byte, error)
	// UpdateGroup calls f with the group's record (nil if none) under a
	// lock that every process sharing the state takes, and keeps what f
	// returns; nil from f keeps the record as it was.
	UpdateGroup(groupID []byte, f func(record []byte) ([]byte, error)) error
	// GroupIDs lists the groups that have a record (Messenger.Groups).
	GroupIDs() ([][]byte, error)
}

// UseGroupStates makes the Messenger keep group state in gs; call it
// before anything else.
func (m *Messenger) UseGroupStates(gs GroupStates) { m.groups = gs }

// loadGroupRecord is the group's record, from GroupStates if set.
func (m *Messenger) loadGroupRecord(gid []byte) ([]byte, error) {
	if m.groups != nil {
		return m.groups.LoadGroup(gid)
	}
	return m.store.Get(groupKey(gid))
}

// updateGroupStates is updateGroup on GroupStates.
func (m *Messenger) updateGroupStates(gid []byte, f func(g **group) error) error {
	return m.groups.UpdateGroup(gid, func(rec []byte) ([]byte, error) {
		var g *group
		if rec != nil {
			g = new(group)
			if err := json.Unmarshal(rec, g); err != nil {
				return nil, fmt.Errorf("%w: %w", errBadGroupRecord, err)
			}
		}
		if err := f(&g); err != nil {
			if errors.Is(err, errUnchanged) {
				return nil, nil
			}
			return nil, err
		}
		if g == nil {
			return nil, nil
		}
		return json.Marshal(g)
	})
}

// SendGroupContent sends c to group gid as SendGroup sends a text (a
// Delete, say); c.Id, if set, makes a retried send land once.
func (m *Messenger) SendGroupContent(ctx context.Context, gid []byte, c *spec.Content) (*SendResult, error) {
	if c == nil || c.Body == nil {
		return nil, ErrEmpty
	}
	seed := c.GetId()
	if len(seed) == 0 {
		var err error
		if seed, err = newClientMessageID(); err != nil {
			return nil, err
		}
	} else if len(seed) != MessageIDSize {
		return nil, fmt.Errorf("messenger: a message id is %d bytes", MessageIDSize)
	}
	_, online := c.Body.(*spec.Content_Typing)
	res, err := m.groupSend(ctx, gid, c, seed, online)
	if err != nil {
		return nil, err
	}
	res.ID = c.GetId()
	return res, nil
}
