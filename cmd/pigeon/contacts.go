package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode"
)

// The contact list, next to the keys in the state directory:
//
//	contacts.json   {"contacts": [{"name": "bob", "account": "<32 hex>"}]}
//
// Local names for accounts, so commands take "bob" where they take an
// account id and print "bob" where they would print the id. Replaced
// atomically under the conversation store's lock (chats.lock).
const contactsFile = "contacts.json"

// maxContactName is the longest contact name, in bytes.
const maxContactName = 64

// contact is one entry of the contact list.
type contact struct {
	Name    string `json:"name"`
	Account string `json:"account"` // 32 hex digits
}

// contactList is what contacts.json holds.
type contactList struct {
	Contacts []contact `json:"contacts"`
}

// byAccount returns the name of account (hex), "" if it has none.
func (l *contactList) byAccount(account string) string {
	for _, ct := range l.Contacts {
		if ct.Account == account {
			return ct.Name
		}
	}
	return ""
}

// byName returns the account (hex) called name, "" if none is.
func (l *contactList) byName(name string) string {
	for _, ct := range l.Contacts {
		if ct.Name == name {
			return ct.Account
		}
	}
	return ""
}

// loadContacts reads the contact list; a missing file is an empty list.
func (c *cli) loadContacts() (*contactList, error) {
	b, err := os.ReadFile(filepath.Join(c.dir, contactsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return &contactList{}, nil
	}
	if err != nil {
		return nil, err
	}
	var l contactList
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, failf("fix or remove "+filepath.Join(c.dir, contactsFile)+" (it only holds contact names)", "the contact list is damaged: %v", err)
	}
	for _, ct := range l.Contacts {
		if checkContactName(ct.Name) != nil || !looksLikeID(ct.Account) || ct.Account != strings.ToLower(ct.Account) {
			return nil, failf("fix or remove "+filepath.Join(c.dir, contactsFile)+" (it only holds contact names)", "the contact list is damaged: bad entry %q", ct.Name)
		}
	}
	return &l, nil
}

// contacts returns the contact list, or an empty one (with a note) when
// it cannot be read: names only decorate output.
func (c *cli) contacts() *contactList {
	l, err := c.loadContacts()
	if err != nil {
		fmt.Fprintf(c.stderr, "pigeon: contact names not shown: %v\n", err)
		return &contactList{}
	}
	return l
}

// updateContacts changes the contact list under the lock.
func (c *cli) updateContacts(fn func(*contactList) error) error {
	unlock, err := c.lockChats()
	if err != nil {
		return err
	}
	defer unlock()
	l, err := c.loadContacts()
	if err != nil {
		return err
	}
	if err := fn(l); err != nil {
		return err
	}
	slices.SortFunc(l.Contacts, func(a, b contact) int { return strings.Compare(a.Name, b.Name) })
	b, err := json.MarshalIndent(l, "", "\t")
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(c.dir, contactsFile), append(b, '\n'))
}

// checkContactName refuses names that could not be typed back as one
// argument, would do things to a terminal, could be taken for an id, a
// flag or this account ("you").
func checkContactName(name string) error {
	switch {
	case name == "" || len(name) > maxContactName:
		return usagef("", "a contact name is 1 to %d bytes", maxContactName)
	case strings.ContainsFunc(name, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }):
		return usagef("use letters, digits and punctuation, e.g. bob or bob.smith", "a contact name has no spaces or control characters: %q", name)
	case looksLikeID(name):
		return usagef("", "a contact name cannot be 32 hex digits (it would hide an account id)")
	case strings.HasPrefix(name, "-"):
		return usagef("", "a contact name cannot start with \"-\"")
	case name == "you":
		return usagef("", "\"you\" stands for this account; pick another name")
	}
	return nil
}

// contactCommands are the subcommands of "pigeon contact".
func contactCommands() []command {
	remove := func(c *cli, _ context.Context, args []string) error { return c.contactRemove(args) }
	return []command{
		{name: "add", run: func(c *cli, _ context.Context, args []string) error { return c.contactAdd(args) }},
		{name: "list", run: func(c *cli, _ context.Context, args []string) error { return c.contactList(args) }},
		{name: "remove", run: remove},
		{name: "rm", run: remove},
	}
}

// contact is "pigeon contact add|list|remove".
func (c *cli) contact(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("pigeon contact add NAME ACCOUNT | list | remove NAME", "contact needs a subcommand")
	}
	if sub, ok := lookup(contactCommands(), args[0]); ok {
		return sub.run(c, ctx, args[1:])
	}
	return usagef("pigeon contact add | list | remove", "unknown contact command %q", args[0])
}

func (c *cli) contactAdd(args []string) error {
	if len(args) != 2 {
		return usagef("pigeon contact add NAME ACCOUNT", "contact add needs a name and an account id")
	}
	name := args[0]
	if err := checkContactName(name); err != nil {
		return err
	}
	acct, err := parseAccount(args[1])
	if err != nil {
		return err
	}
	d, err := c.device()
	if err != nil {
		return err
	}
	if string(acct) == string(d.AccountID()) {
		return failf("", "that is this account's own id")
	}
	h := hex.EncodeToString(acct)
	err = c.updateContacts(func(l *contactList) error {
		for _, ct := range l.Contacts {
			switch {
			case strings.EqualFold(ct.Name, name):
				return failf(fmt.Sprintf("pigeon contact remove %s, then add it again", ct.Name), "there is a contact called %s already", ct.Name)
			case ct.Account == h:
				return failf(fmt.Sprintf("pigeon contact remove %s, then add it again", ct.Name), "%s is a contact already, called %s", short(acct), ct.Name)
			}
		}
		l.Contacts = append(l.Contacts, contact{Name: name, Account: h})
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stderr, "pigeon: added %s (%s)\n", name, short(acct))
	return nil
}

func (c *cli) contactList(args []string) error {
	if len(args) != 0 {
		return usagef("pigeon contact list", "contact list takes no arguments")
	}
	if _, err := c.device(); err != nil {
		return err
	}
	l, err := c.loadContacts()
	if err != nil {
		return err
	}
	for _, ct := range l.Contacts {
		fmt.Fprintf(c.stdout, "%s\t%s\n", ct.Name, ct.Account)
	}
	if len(l.Contacts) == 0 {
		fmt.Fprintln(c.stderr, "pigeon: no contacts yet; \"pigeon contact add NAME ACCOUNT\" adds one")
	}
	return nil
}

func (c *cli) contactRemove(args []string) error {
	if len(args) != 1 {
		return usagef("pigeon contact remove NAME", "contact remove needs a name")
	}
	if _, err := c.device(); err != nil {
		return err
	}
	name := args[0]
	err := c.updateContacts(func(l *contactList) error {
		n := len(l.Contacts)
		l.Contacts = slices.DeleteFunc(l.Contacts, func(ct contact) bool { return ct.Name == name })
		if len(l.Contacts) == n {
			return failf(`"pigeon contact list" shows the contacts`, "no contact is called %q", name)
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stderr, "pigeon: removed %s (the conversation and its history stay)\n", name)
	return nil
}

// account reads an account argument: a contact's name or an account id.
func (c *cli) account(arg string) ([]byte, error) {
	if looksLikeID(arg) {
		return parseAccount(arg)
	}
	l, err := c.loadContacts()
	if err != nil {
		return nil, err
	}
	if h := l.byName(arg); h != "" {
		return mustHex(h), nil
	}
	return nil, failf(`an account id is the 32 hex digits "pigeon id" prints; "pigeon contact list" shows the contacts`, "%q is neither an account id nor a contact", arg)
}

// names shows accounts by their contact names.
type names struct {
	list *contactList
	me   string // this account, hex
}

// names returns how this device shows accounts now.
func (c *cli) names(me []byte) *names {
	return &names{list: c.contacts(), me: hex.EncodeToString(me)}
}

// of is how an account (hex) is shown: "you" for this account, its
// contact name, else the id.
func (n *names) of(account string) string {
	if account == n.me {
		return "you"
	}
	if name := n.list.byAccount(account); name != "" {
		return name
	}
	return account
}

// short is how an account appears in a message about it: its contact
// name, else its first 8 hex digits.
func (n *names) short(acct []byte) string {
	if name := n.list.byAccount(hex.EncodeToString(acct)); name != "" {
		return name
	}
	return short(acct)
}

// name is the contact name of an account (hex), "" if it has none, for
// the "name" fields of -json output.
func (n *names) name(account string) string { return n.list.byAccount(account) }

// arg is how a command line names an account: its contact name, else
// its full id.
func (n *names) arg(acct []byte) string {
	if name := n.list.byAccount(hex.EncodeToString(acct)); name != "" {
		return name
	}
	return hex.EncodeToString(acct)
}
