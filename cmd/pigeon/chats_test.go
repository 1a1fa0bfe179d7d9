package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMarks(t *testing.T) {
	a, b := strings.Repeat("a", 32), strings.Repeat("b", 32)
	for _, c := range []struct {
		to, delivered, read []string
		want                string
	}{
		{[]string{a}, nil, nil, "sent"},
		{[]string{a}, []string{a}, nil, "delivered"},
		{[]string{a}, []string{a}, []string{a}, "read"},
		{[]string{a, b}, nil, nil, "sent"},
		{[]string{a, b}, []string{b}, nil, "delivered 1/2"},
		{[]string{a, b}, []string{a, b}, []string{a}, "delivered 2/2, read 1/2"},
		{[]string{a, b}, []string{a, b}, []string{a, b}, "read 2/2"},
		{nil, nil, nil, "sent"},
	} {
		m := &chatMessage{To: c.to, Delivered: c.delivered, Read: c.read}
		if got := m.marks(); got != c.want {
			t.Errorf("marks(to %d, delivered %d, read %d) = %q, want %q", len(c.to), len(c.delivered), len(c.read), got, c.want)
		}
	}
}

// TestChatFileChecked: a conversation file with ids this program would
// not write is refused as damaged, not decoded into a panic later.
func TestChatFileChecked(t *testing.T) {
	c := &cli{dir: t.TempDir()}
	id := []byte("0123456789abcdef")
	good := &chatMessage{ID: "0011223344556677", From: strings.Repeat("c", 32), Text: "hi"}
	if err := c.updateChat(id, false, func(ch *chat) error { ch.add(good); ch.add(good); return nil }); err != nil {
		t.Fatal(err)
	}
	ch, err := c.readChat(id, false)
	if err != nil || len(ch.Messages) != 1 {
		t.Fatalf("read back %+v, %v; want the message once", ch, err)
	}
	for _, bad := range []string{
		`{"messages":[{"id":"zz"}]}`,
		`{"messages":[{"id":"0011223344556677","from":"abc"}]}`,
		`{"group":{"name":"x","admin":"00","salt":"00","members":[]}}`,
		`not json`,
	} {
		if err := os.WriteFile(c.chatFile(id, false), []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := c.readChat(id, false); err == nil {
			t.Errorf("read %s without an error", bad)
		}
	}
	if fi, err := os.Stat(filepath.Join(c.dir, "chats")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("chats directory: %v, %v", fi.Mode().Perm(), err)
	}
}

func TestShortNeverPanics(t *testing.T) {
	for _, c := range []struct {
		in   []byte
		want string
	}{{nil, ""}, {[]byte{0xab}, "ab"}, {[]byte{1, 2, 3, 4, 5}, "01020304"}} {
		if got := short(c.in); got != c.want {
			t.Errorf("short(%x) = %q, want %q", c.in, got, c.want)
		}
	}
}
