package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
)

// The conversation store, next to the keys in the state directory:
//
//	chats/<account hex>.json        a one-to-one conversation
//	chats/group-<group hex>.json    a group: its state and conversation
//	chats.lock                      taken while a file is read and rewritten
//
// It is what receipts, delete for everyone and "pigeon history" work on.
// Files are 0600 and replaced atomically; the lock is held only around a
// read-modify-write, never across the network. e2e takes its own lock
// inside this one, never the other way round.

// maxChatMessages is how many messages a conversation keeps; older ones
// are dropped from the local history.
const maxChatMessages = 1000

// chat is one conversation.
type chat struct {
	Group    *groupInfo     `json:"group,omitempty"`
	Messages []*chatMessage `json:"messages,omitempty"`
}

// groupInfo is a group as this device knows it.
type groupInfo struct {
	Name     string   `json:"name"`
	Admin    string   `json:"admin"`   // account hex: who created it, the only one who may change it
	Salt     string   `json:"salt"`    // hex: binds the group id to Admin (e2e.GroupIDMatches)
	Members  []string `json:"members"` // account hex, the admin's included
	Revision uint64   `json:"revision"`
	Removed  bool     `json:"removed,omitempty"` // this account was removed
	// KeyGen counts this device's sender keys for the group: it grows
	// with every rotation. KeySentTo is the devices ("account.device")
	// given the current one.
	KeyGen    int      `json:"key_gen"`
	KeySentTo []string `json:"key_sent_to,omitempty"`
	// OnlineSends counts online-only messages under the current key
	// (rotateLocked).
	OnlineSends int `json:"online_sends,omitempty"`
}

// chatMessage is one message of a conversation.
type chatMessage struct {
	ID      string `json:"id"`             // Content.id, hex
	From    string `json:"from,omitempty"` // sender account hex; empty: this account
	SentAt  int64  `json:"sent_at_ms"`     // the sender's clock
	At      int64  `json:"at_ms"`          // this device's clock when sent or received
	Text    string `json:"text,omitempty"`
	File    string `json:"file,omitempty"`
	Deleted bool   `json:"deleted,omitempty"`
	// Outgoing: the accounts that should get it, and those that said they
	// did, and read it.
	To        []string `json:"to,omitempty"`
	Delivered []string `json:"delivered,omitempty"`
	Read      []string `json:"read,omitempty"`
	// Incoming: a read receipt went back.
	ReadSent bool `json:"read_sent,omitempty"`
}

// chatFile names the file of the conversation with an account, or of a
// group when group is set.
func (c *cli) chatFile(id []byte, group bool) string {
	name := hex.EncodeToString(id)
	if group {
		name = "group-" + name
	}
	return filepath.Join(c.dir, "chats", name+".json")
}

// lockChats takes the conversation store's lock, waiting for other
// pigeon processes on the same state directory.
func (c *cli) lockChats() (unlock func(), err error) {
	if _, err := os.Stat(c.dir); errors.Is(err, os.ErrNotExist) {
		return nil, c.notInitialized()
	}
	f, err := os.OpenFile(filepath.Join(c.dir, "chats.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock conversations: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock conversations: %w", err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// loadChat reads a conversation file; a missing one is an empty chat.
func loadChat(path string) (*chat, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &chat{}, nil
	}
	if err != nil {
		return nil, err
	}
	var ch chat
	if err := json.Unmarshal(b, &ch); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	if err := ch.check(); err != nil {
		return nil, fmt.Errorf("%s is damaged: %w", filepath.Base(path), err)
	}
	return &ch, nil
}

// check refuses a conversation file whose ids are not what this program
// writes, so the rest can decode them without checking again.
func (ch *chat) check() error {
	isID := func(s string, n int) bool {
		b, err := hex.DecodeString(s)
		return err == nil && len(b) == n
	}
	if g := ch.Group; g != nil {
		if !isID(g.Admin, 16) || !isID(g.Salt, 16) {
			return errors.New("bad admin id")
		}
		for _, m := range g.Members {
			if !isID(m, 16) {
				return errors.New("bad member id")
			}
		}
	}
	for _, m := range ch.Messages {
		if !isID(m.ID, messageIDSize) || (m.From != "" && !isID(m.From, 16)) {
			return errors.New("bad message id")
		}
	}
	return nil
}

// saveChat replaces a conversation file atomically.
func saveChat(path string, ch *chat) error {
	if n := len(ch.Messages); n > maxChatMessages {
		ch.Messages = slices.Delete(ch.Messages, 0, n-maxChatMessages)
	}
	b, err := json.MarshalIndent(ch, "", "\t")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// readChat returns a conversation as stored now.
func (c *cli) readChat(id []byte, group bool) (*chat, error) {
	unlock, err := c.lockChats()
	if err != nil {
		return nil, err
	}
	defer unlock()
	return loadChat(c.chatFile(id, group))
}

// errUnchanged from an updateChat function leaves the file as it was.
var errUnchanged = errors.New("unchanged")

// updateChat reads a conversation, lets fn change it and writes it back,
// under the lock.
func (c *cli) updateChat(id []byte, group bool, fn func(*chat) error) error {
	unlock, err := c.lockChats()
	if err != nil {
		return err
	}
	defer unlock()
	path := c.chatFile(id, group)
	ch, err := loadChat(path)
	if err != nil {
		return err
	}
	if err := fn(ch); errors.Is(err, errUnchanged) {
		return nil
	} else if err != nil {
		return err
	}
	return saveChat(path, ch)
}

// find returns the message with id sent by from ("" for this account).
func (ch *chat) find(id, from string) *chatMessage {
	for _, m := range ch.Messages {
		if m.ID == id && m.From == from {
			return m
		}
	}
	return nil
}

// add appends m unless the conversation has it already (a redelivery).
func (ch *chat) add(m *chatMessage) bool {
	if ch.find(m.ID, m.From) != nil {
		return false
	}
	ch.Messages = append(ch.Messages, m)
	return true
}

// marks says how far an outgoing message got: sent, delivered, read.
func (m *chatMessage) marks() string {
	n := len(m.To)
	if n == 0 {
		return "sent"
	}
	d, r := len(m.Delivered), len(m.Read)
	count := func(k int) string {
		if n == 1 {
			return ""
		}
		return fmt.Sprintf(" %d/%d", k, n)
	}
	switch {
	case r == n:
		return "read" + count(r)
	case d == 0:
		return "sent"
	case r == 0:
		return "delivered" + count(d)
	}
	return "delivered" + count(d) + ", read" + count(r)
}

// groupChats lists the groups this device knows, by id.
func (c *cli) groupChats() (map[string]*chat, error) {
	unlock, err := c.lockChats()
	if err != nil {
		return nil, err
	}
	defer unlock()
	files, err := filepath.Glob(filepath.Join(c.dir, "chats", "group-*.json"))
	if err != nil {
		return nil, err
	}
	out := make(map[string]*chat, len(files))
	for _, f := range files {
		ch, err := loadChat(f)
		if err != nil {
			return nil, err
		}
		if ch.Group == nil {
			continue
		}
		id := filepath.Base(f)
		out[id[len("group-"):len(id)-len(".json")]] = ch
	}
	return out, nil
}
