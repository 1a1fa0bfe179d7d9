package messenger

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
)

// GroupInfo is a group's state as this device knows it, for an app to
// show (Group).
type GroupInfo struct {
	GroupID []byte
	Name    string
	Admin   []byte // the admin's account id
	// Members are the member account ids (16 bytes each, concatenated),
	// in the admin's order; MemberCount and Member take them apart.
	Members  []byte
	Revision int64 // counts the admin's changes, 1 when made
	Removed  bool  // this account was removed from the group
}

// MemberCount is how many members the group has.
func (g *GroupInfo) MemberCount() int { return len(g.Members) / 16 }

// Member returns the i-th member's account id.
func (g *GroupInfo) Member(i int) []byte { return g.Members[i*16 : (i+1)*16] }

// Group returns group gid's state, ErrNoGroup if this device does not
// know the group.
func (m *Messenger) Group(gid []byte) (*GroupInfo, error) {
	if len(gid) != 16 {
		return nil, ErrBadAccount
	}
	g, err := m.loadGroup(gid)
	if err != nil {
		return nil, err
	}
	if g == nil {
		return nil, ErrNoGroup
	}
	info := &GroupInfo{GroupID: gid, Name: g.Name, Revision: int64(g.Revision), Removed: g.Removed}
	if info.Admin, err = hex.DecodeString(g.Admin); err != nil {
		return nil, fmt.Errorf("messenger: group record: %w", err)
	}
	for _, h := range g.Members {
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != 16 {
			return nil, fmt.Errorf("messenger: group record: bad member %q", h)
		}
		info.Members = append(info.Members, b...)
	}
	return info, nil
}

// GroupList is the groups this device knows (Groups), ordered by id.
type GroupList struct{ ids [][]byte }

// Count is how many groups there are.
func (l *GroupList) Count() int { return len(l.ids) }

// GroupID returns the i-th group's id.
func (l *GroupList) GroupID(i int) []byte { return l.ids[i] }

// Groups lists the groups this device knows, those this account was
// removed from included; Group shows each.
func (m *Messenger) Groups() (*GroupList, error) {
	var ids [][]byte
	if m.groups != nil {
		var err error
		if ids, err = m.groups.GroupIDs(); err != nil {
			return nil, err
		}
	} else {
		keys, err := m.store.List(groupKey(nil))
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			id, err := hex.DecodeString(strings.TrimPrefix(k, groupKey(nil)))
			if err != nil || len(id) != 16 {
				continue // not a group's record
			}
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, bytes.Compare)
	return &GroupList{ids: ids}, nil
}
