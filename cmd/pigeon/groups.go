package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
	"github.com/pigeonhole/pigeonhole/relay/client/messenger"
)

// Groups are a client concept: the relay stores no membership and sees
// only the recipients of each send. The admin (the account that created
// the group) sends the group's state pairwise to every member; each
// member device gives its own sender key to every member device before
// its first group message, and makes a new one when a member is removed.

// maxGroupMembers is the most accounts a group may have.
const maxGroupMembers = messenger.MaxGroupMembers

// maxGroupName is the longest group name, in bytes.
const maxGroupName = messenger.MaxGroupName

// conversation is whom a command talks to: an account or a group.
type conversation struct {
	id    []byte
	group bool
	name  string // the group's name
}

// resolve reads a conversation argument: a group's id, an account id, a
// contact's name, or a group's unique name (a name both a contact and a
// group have is refused).
func (c *cli) resolve(arg string) (*conversation, error) {
	groups, err := c.groupChats()
	if err != nil {
		return nil, err
	}
	if ch, ok := groups[strings.ToLower(arg)]; ok {
		id, _ := hex.DecodeString(strings.ToLower(arg))
		return &conversation{id: id, group: true, name: ch.Group.Name}, nil
	}
	if looksLikeID(arg) {
		// Never a name: a group called like an account must not catch
		// what is meant for the account.
		id, err := parseAccount(arg)
		if err != nil {
			return nil, err
		}
		return &conversation{id: id}, nil
	}
	var named []string
	for id, ch := range groups {
		if ch.Group.Name == arg {
			named = append(named, id)
		}
	}
	contacts, err := c.loadContacts()
	if err != nil {
		return nil, err
	}
	if h := contacts.byName(arg); h != "" {
		if len(named) > 0 {
			sort.Strings(named)
			return nil, failf("use the id: "+strings.Join(append([]string{h}, named...), ", "), "%q is both a contact and a group", arg)
		}
		return &conversation{id: mustHex(h)}, nil
	}
	switch len(named) {
	case 1:
		id, _ := hex.DecodeString(named[0])
		return &conversation{id: id, group: true, name: arg}, nil
	case 0:
	default:
		sort.Strings(named)
		return nil, failf("use the group id (\"pigeon group list\" shows them): "+strings.Join(named, ", "), "%d groups are called %q", len(named), arg)
	}
	return nil, failf(`an account id is the 32 hex digits "pigeon id" prints; "pigeon contact list" shows the contacts and "pigeon group list" the groups`, "%q is neither an account id, a contact nor a group", arg)
}

// looksLikeID reports whether s is 32 hex digits, an account or group id.
func looksLikeID(s string) bool {
	b, err := hex.DecodeString(strings.TrimSpace(s))
	return err == nil && len(b) == 16
}

// groupCommands are the subcommands of "pigeon group".
func groupCommands() []command {
	change := func(op string) func(*cli, context.Context, []string) error {
		return func(c *cli, ctx context.Context, args []string) error { return c.groupChange(ctx, op, args) }
	}
	return []command{
		{name: "create", run: (*cli).groupCreate},
		{name: "send", run: (*cli).send},
		{name: "add", run: change("add")},
		{name: "remove", run: change("remove")},
		{name: "list", run: func(c *cli, _ context.Context, args []string) error { return c.groupList(args) }},
	}
}

func (c *cli) group(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef(`pigeon group create NAME ACCOUNT... | send GROUP TEXT | add GROUP ACCOUNT... | remove GROUP ACCOUNT... | list`, "group needs a subcommand")
	}
	if sub, ok := lookup(groupCommands(), args[0]); ok {
		return sub.run(c, ctx, args[1:])
	}
	return usagef(`pigeon group create | send | add | remove | list`, "unknown group command %q", args[0])
}

// groupCreate makes a group with this account as its admin and tells the
// members (the Messenger's CreateGroup).
func (c *cli) groupCreate(ctx context.Context, args []string) error {
	if len(args) < 2 {
		return usagef(`pigeon group create NAME ACCOUNT...`, "a group needs a name and at least one other member")
	}
	name := args[0]
	if err := checkGroupName(name); err != nil {
		return err
	}
	d, err := c.device()
	if err != nil {
		return err
	}
	members := [][]byte{d.AccountID()}
	for _, a := range args[1:] {
		acct, err := c.account(a)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(members, func(m []byte) bool { return slices.Equal(m, acct) }) {
			members = append(members, acct)
		}
	}
	if len(members) > maxGroupMembers {
		return failf("", "a group has at most %d members", maxGroupMembers)
	}
	m, err := c.messenger()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	gid, err := m.CreateGroup(ctx, name, slices.Concat(members[1:]...))
	if errors.Is(err, messenger.ErrBadGroup) {
		return badGroup(err)
	}
	var ae *messenger.AnnounceError
	if gid != nil && (err == nil || errors.As(err, &ae)) {
		fmt.Fprintln(c.stdout, hex.EncodeToString(gid))
	}
	if err := c.announced(m, err); err != nil {
		return err
	}
	fmt.Fprintf(c.stderr, "pigeon: created the group %q with %d members\n", name, len(members))
	return nil
}

// checkGroupName refuses names that are empty, long, would do things to
// a terminal or hide characters (controls, bidirectional overrides,
// zero-width characters), or look like an id.
func checkGroupName(name string) error {
	if name == "" || len(name) > maxGroupName || strings.ContainsFunc(name, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return failf("", "a group name is 1 to %d printable characters", maxGroupName)
	}
	if looksLikeID(name) {
		return failf("", "a group name cannot look like an account or group id")
	}
	return nil
}

// groupChange adds or removes members (the admin only; the Messenger's
// ChangeGroup).
func (c *cli) groupChange(ctx context.Context, op string, args []string) error {
	if len(args) < 2 {
		return failf(fmt.Sprintf("pigeon group %s GROUP ACCOUNT...", op), "%s needs a group and at least one account", op)
	}
	conv, err := c.resolve(args[0])
	if err != nil {
		return err
	}
	if !conv.group {
		return failf(`"pigeon group list" shows your groups`, "%s is not a group", args[0])
	}
	var accts []byte
	for _, a := range args[1:] {
		acct, err := c.account(a)
		if err != nil {
			return err
		}
		accts = append(accts, acct...)
	}
	m, err := c.messenger()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if op == "add" {
		err = m.ChangeGroup(ctx, conv.id, accts, nil)
	} else {
		err = m.ChangeGroup(ctx, conv.id, nil, accts)
	}
	switch {
	case errors.Is(err, messenger.ErrNoGroup):
		return failf("", "no such group")
	case errors.Is(err, messenger.ErrNotMember):
		return failf("", "you are no longer a member of %q", conv.name)
	case errors.Is(err, messenger.ErrNotAdmin):
		g, gerr := m.Group(conv.id)
		if gerr != nil {
			return gerr
		}
		return failf("", "only the group's admin (%s) can change its members", short(g.Admin))
	case errors.Is(err, messenger.ErrBadGroup):
		return badGroup(err)
	}
	if err := c.announced(m, err); err != nil {
		return err
	}
	g, err := m.Group(conv.id)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stderr, "pigeon: %q has %d members now\n", g.Name, g.MemberCount())
	return nil
}

// rotateLocked, called under the conversation lock (by groupin.go),
// makes this device's next group message use a new sender key that the
// removed accounts never get, and forgets theirs.
func (c *cli) rotateLocked(d *e2e.Device, gid []byte, g *groupInfo, removed []string) error {
	if err := d.RotateSenderKey(context.Background(), gid); err != nil {
		return err
	}
	g.KeyGen++
	g.KeySentTo = nil
	g.OnlineSends = 0
	for _, r := range removed {
		if err := d.ForgetSenderKeys(gid, mustHex(r)); err != nil {
			return err
		}
	}
	return nil
}

// badGroup words the Messenger's refusal of a group's name or members
// (messenger.ErrBadGroup) as pigeon's own.
func badGroup(err error) error {
	return failf("", "%s", strings.TrimPrefix(err.Error(), messenger.ErrBadGroup.Error()+": "))
}

// announced says which members a group's new state (an
// *messenger.AnnounceError) missed, and fails if any did; other errors
// are worded as a failed send's.
func (c *cli) announced(m *messenger.Messenger, err error) error {
	var ae *messenger.AnnounceError
	if !errors.As(err, &ae) {
		if err != nil {
			return c.sendError(nil, err)
		}
		return nil
	}
	failed := make([]string, len(ae.Failed))
	for i, f := range ae.Failed {
		fmt.Fprintf(c.stderr, "pigeon: could not tell %s about the group: %v\n", short(f.Account), c.sendError(f.Account, f.Err))
		failed[i] = short(f.Account)
	}
	if ae.OwnDevices != nil {
		fmt.Fprintf(c.stderr, "pigeon: your other devices do not know about the change: %v\n", c.sendError(m.AccountID(), ae.OwnDevices))
	}
	if len(failed) > 0 {
		return failf(`"pigeon group add GROUP ACCOUNT..." with accounts already in it sends the state again`, "%d member%s did not get the group's state: %s", len(failed), plural(len(failed)), strings.Join(failed, ", "))
	}
	return nil
}

// groupList prints the groups this device knows (the Messenger's
// Groups), by name.
func (c *cli) groupList(args []string) error {
	if len(args) != 0 {
		return usagef("pigeon group list", "list takes no arguments")
	}
	m, err := c.messenger()
	if err != nil {
		return err
	}
	list, err := m.Groups()
	if err != nil {
		return err
	}
	groups := make([]*messenger.GroupInfo, list.Count())
	for i := range groups {
		if groups[i], err = m.Group(list.GroupID(i)); err != nil {
			return err
		}
	}
	sort.SliceStable(groups, func(i, j int) bool { return groups[i].Name < groups[j].Name })
	me := m.AccountID()
	n := c.names(me)
	for _, g := range groups {
		note := ""
		switch {
		case g.Removed:
			note = ", you were removed"
		case slices.Equal(g.Admin, me):
			note = ", you are the admin"
		}
		fmt.Fprintf(c.stdout, "%x %s (%d members%s)\n", g.GroupID, g.Name, g.MemberCount(), note)
		for i := range g.MemberCount() {
			who := hex.EncodeToString(g.Member(i))
			if slices.Equal(g.Member(i), me) {
				who += " (you)"
			} else if name := n.name(who); name != "" {
				who += " " + name
			}
			fmt.Fprintf(c.stdout, "  %s\n", who)
		}
	}
	if len(groups) == 0 {
		fmt.Fprintln(c.stderr, "pigeon: no groups yet; \"pigeon group create NAME ACCOUNT...\" makes one")
	}
	return nil
}

// mustHex decodes hex this program wrote.
func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(fmt.Sprintf("stored id %q: %v", s, err))
	}
	return b
}
