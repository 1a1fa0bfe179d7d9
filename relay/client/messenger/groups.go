package messenger

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
	"github.com/pigeonhole/pigeonhole/spec"
)

// Groups are a client concept (protocol.md, "Groups"): the relay stores no
// membership and sees only the recipients of each send. The admin (the
// account that created the group) sends the group's state pairwise to
// every member; each member device gives its own sender key to every
// member device before its first group message, and makes a new one when
// a member is removed. The state is kept in the store's records under
// "groups/<group id hex>".

// MaxGroupMembers is the most accounts a group may have.
const MaxGroupMembers = 256

// MaxGroupName is the longest group name, in bytes.
const MaxGroupName = 100

// maxOnlineSends is how many online-only messages a device sends under
// one sender key before it makes a new one: devices that were offline
// never see those, and libsignal refuses a message more than 2,000
// iterations ahead of the last one a device saw.
const maxOnlineSends = 1000

// group is a group's state as this device keeps it.
type group struct {
	Name     string   `json:"name"`
	Admin    string   `json:"admin"` // hex account id
	Salt     string   `json:"salt"`  // hex, binds the id to the admin
	Members  []string `json:"members"`
	Revision uint64   `json:"revision"`
	Removed  bool     `json:"removed,omitempty"` // this account was removed
	// KeyGen counts this device's sender keys; KeySentTo lists the
	// devices ("account hex.device") that have the current one.
	KeyGen      int      `json:"key_gen"`
	KeySentTo   []string `json:"key_sent_to,omitempty"`
	OnlineSends int      `json:"online_sends,omitempty"`
}

func groupKey(gid []byte) string { return "groups/" + hex.EncodeToString(gid) }

// loadGroup returns the group's state, or nil.
func (m *Messenger) loadGroup(gid []byte) (*group, error) {
	b, err := m.loadGroupRecord(gid)
	if err != nil || b == nil {
		return nil, err
	}
	g := new(group)
	if err := json.Unmarshal(b, g); err != nil {
		return nil, fmt.Errorf("%w: %w", errBadGroupRecord, err)
	}
	return g, nil
}

// errBadGroupRecord is a group record that does not parse: it will not
// parse later either, so a message that needs it is not kept waiting.
var errBadGroupRecord = errors.New("messenger: group record unreadable")

// errUnchanged makes updateGroup keep the record as it was.
var errUnchanged = errors.New("unchanged")

// updateGroup changes the group's record under the group lock; f gets
// nil for an unknown group and may set *g.
func (m *Messenger) updateGroup(gid []byte, f func(g **group) error) error {
	m.groupMu.Lock()
	defer m.groupMu.Unlock()
	if m.groups != nil {
		return m.updateGroupStates(gid, f)
	}
	g, err := m.loadGroup(gid)
	if err != nil {
		return err
	}
	if err := f(&g); err != nil {
		if errors.Is(err, errUnchanged) {
			return nil
		}
		return err
	}
	if g == nil {
		return nil
	}
	b, err := json.Marshal(g)
	if err != nil {
		return fmt.Errorf("messenger: %w", err)
	}
	return m.store.Put(groupKey(gid), b)
}

func checkGroupName(name string) error {
	if name == "" || len(name) > MaxGroupName || strings.ContainsFunc(name, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return fmt.Errorf("%w: a group name is 1 to %d printable characters", ErrBadGroup, MaxGroupName)
	}
	return nil
}

// splitIDs cuts concatenated 16-byte ids apart.
func splitIDs(b []byte) ([][]byte, error) {
	if len(b)%16 != 0 {
		return nil, ErrBadAccount
	}
	var out [][]byte
	for i := 0; i < len(b); i += 16 {
		out = append(out, b[i:i+16])
	}
	return out, nil
}

// CreateGroup makes a group named name with this account as its admin
// and the accounts in members (16-byte ids, concatenated), and tells
// them. It returns the group id (16 bytes).
func (m *Messenger) CreateGroup(ctx context.Context, name string, members []byte) ([]byte, error) {
	if err := checkGroupName(name); err != nil {
		return nil, err
	}
	accts, err := splitIDs(members)
	if err != nil {
		return nil, err
	}
	me := hex.EncodeToString(m.store.AccountID())
	list := []string{me}
	for _, a := range accts {
		if h := hex.EncodeToString(a); !slices.Contains(list, h) {
			list = append(list, h)
		}
	}
	if len(list) < 2 || len(list) > MaxGroupMembers {
		return nil, fmt.Errorf("%w: a group has 2 to %d members", ErrBadGroup, MaxGroupMembers)
	}
	gid, salt, err := e2e.NewGroupID(m.store.AccountID())
	if err != nil {
		return nil, fmt.Errorf("messenger: %w", err)
	}
	g := &group{Name: name, Admin: me, Salt: hex.EncodeToString(salt), Members: list, Revision: 1}
	if err := m.updateGroup(gid, func(p **group) error { *p = g; return nil }); err != nil {
		return nil, err
	}
	return gid, m.announce(ctx, gid, g, nil)
}

// ChangeGroup adds and removes members (16-byte ids, concatenated) of a
// group this account is the admin of, makes a new sender key when
// members leave, and sends the new state to the members and to those
// removed. Calling it with no change sends the state again.
func (m *Messenger) ChangeGroup(ctx context.Context, gid, add, remove []byte) error {
	adds, err := splitIDs(add)
	if err != nil {
		return err
	}
	removes, err := splitIDs(remove)
	if err != nil {
		return err
	}
	me := hex.EncodeToString(m.store.AccountID())
	return m.adminChange(ctx, gid, func(g *group) ([]string, error) {
		members := slices.Clone(g.Members)
		for _, a := range adds {
			if h := hex.EncodeToString(a); !slices.Contains(members, h) {
				members = append(members, h)
			}
		}
		var gone []string
		for _, r := range removes {
			h := hex.EncodeToString(r)
			if h == me {
				return nil, fmt.Errorf("%w: the admin cannot remove itself", ErrBadGroup)
			}
			if slices.Contains(members, h) {
				members = slices.DeleteFunc(members, func(x string) bool { return x == h })
				gone = append(gone, h)
			}
		}
		if len(members) > MaxGroupMembers {
			return nil, fmt.Errorf("%w: a group has at most %d members", ErrBadGroup, MaxGroupMembers)
		}
		if slices.Equal(members, g.Members) {
			return nil, errUnchanged
		}
		g.Members = members
		return gone, nil
	})
}

// RenameGroup gives a group this account is the admin of a new name and
// sends the new state to its members, who take the name from it.
// Renaming it to the name it has sends the state again.
func (m *Messenger) RenameGroup(ctx context.Context, gid []byte, name string) error {
	if err := checkGroupName(name); err != nil {
		return err
	}
	return m.adminChange(ctx, gid, func(g *group) ([]string, error) {
		if g.Name == name {
			return nil, errUnchanged
		}
		g.Name = name
		return nil, nil
	})
}

// adminChange changes group gid with f, under the group lock, if this
// account is its admin: f returns the accounts it removed, or
// errUnchanged. A change counts as a new revision, and removals make a
// new sender key. The state then goes to the members and those removed,
// changed or not.
func (m *Messenger) adminChange(ctx context.Context, gid []byte, f func(g *group) ([]string, error)) error {
	me := hex.EncodeToString(m.store.AccountID())
	var g *group
	var gone []string
	err := m.updateGroup(gid, func(p **group) error {
		g = *p
		switch {
		case g == nil:
			return ErrNoGroup
		case g.Removed:
			return ErrNotMember
		case g.Admin != me:
			return ErrNotAdmin
		}
		var err error
		if gone, err = f(g); err != nil {
			return err
		}
		g.Revision++
		if len(gone) > 0 {
			return m.rotateLocked(gid, g, gone)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return m.announce(ctx, gid, g, gone)
}

// rotateLocked, called under the group lock, makes this device's next
// group message use a new sender key that the removed accounts never
// get, and forgets theirs.
func (m *Messenger) rotateLocked(gid []byte, g *group, removed []string) error {
	if err := m.store.RotateSenderKey(context.Background(), gid); err != nil {
		return fmt.Errorf("messenger: %w", err)
	}
	g.KeyGen++
	g.KeySentTo = nil
	g.OnlineSends = 0
	for _, r := range removed {
		acct, _ := hex.DecodeString(r)
		if err := m.store.ForgetSenderKeys(gid, acct); err != nil {
			return fmt.Errorf("messenger: %w", err)
		}
	}
	return nil
}

// announce sends the group's state to its members (this account's other
// devices too) and to the accounts just removed from it: an
// *AnnounceError if it missed some, and at once the error that stops
// every send (stopsAll).
func (m *Messenger) announce(ctx context.Context, gid []byte, g *group, removed []string) error {
	plain := groupState(gid, g)
	me := hex.EncodeToString(m.store.AccountID())
	ae := &AnnounceError{}
	for _, a := range append(slices.Clone(g.Members), removed...) {
		if a == me {
			continue
		}
		acct, _ := hex.DecodeString(a)
		if err := m.deliverNew(ctx, acct, plain); err != nil {
			if stopsAll(ctx, err) {
				return err
			}
			m.log.Warn("group state not sent", "to", a[:8], "err", err)
			ae.Failed = append(ae.Failed, AnnounceFailure{Account: acct, Err: err})
		}
	}
	// Not knowing whether there are other devices is no failure: the
	// state goes to them with this device's next group message.
	if ok, err := m.hasOtherDevices(ctx); err == nil && ok {
		err = m.deliverNew(ctx, m.store.AccountID(), plain)
		if err != nil && !errors.Is(err, ErrNoRecipients) {
			if stopsAll(ctx, err) {
				return err
			}
			m.log.Warn("group state not sent to own devices", "err", err)
			ae.OwnDevices = err
		}
	}
	if len(ae.Failed) > 0 || ae.OwnDevices != nil {
		return ae
	}
	return nil
}

// stopsAll reports whether err ends every send, not just the one to an
// account: the relay unreachable, this device removed from its account
// (UNKNOWN_DEVICE), the Messenger closed, ctx done.
func stopsAll(ctx context.Context, err error) bool {
	return errors.Is(err, ErrUnreachable) || spec.Code(client.ErrorCode(err)) == spec.CodeUnknownDevice ||
		errors.Is(err, ErrClosed) || ctx.Err() != nil
}

// groupState encodes a group's state as its admin sends it.
func groupState(gid []byte, g *group) []byte {
	members := make([][]byte, len(g.Members))
	for i, h := range g.Members {
		members[i], _ = hex.DecodeString(h)
	}
	admin, _ := hex.DecodeString(g.Admin)
	salt, _ := hex.DecodeString(g.Salt)
	return encode(&spec.Content{GroupId: gid, Body: &spec.Content_GroupUpdate{GroupUpdate: &spec.GroupUpdate{
		Name: g.Name, Members: members, Revision: g.Revision, Admin: admin, Salt: salt,
	}}})
}

// target is one member account and the devices a group send names.
type target struct {
	acct    []byte
	devices []uint32
}

func deviceKey(acct []byte, id uint32) string {
	return hex.EncodeToString(acct) + "." + strconv.FormatUint(uint64(id), 10)
}
