package messenger

import (
	"bytes"
	"path/filepath"
	"testing"
)

// TestMobile drives the binding surface as an app would: two devices,
// one message each way, receiving with Start.
func TestMobile(t *testing.T) {
	r := newRelay(t)
	alice, err := RegisterMobile(filepath.Join(t.TempDir(), "a"), &r.cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	bobDir := filepath.Join(t.TempDir(), "b")
	bob, err := RegisterMobile(bobDir, &r.cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	bob.Close()
	if bob, err = OpenMobile(bobDir, &r.cfg); err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	arec, brec := newRecorder(), newRecorder()
	alice.Start(arec)
	bob.Start(brec)
	res, err := alice.Send(bob.AccountID(), "hi from the app", nil)
	if err != nil {
		t.Fatal(err)
	}
	if m := nextMessage(t, brec, "hi from the app"); !bytes.Equal(m.ID, res.ID) {
		t.Fatalf("bob got %+v", m)
	}
	if res.Sealed || res.IdentifiedReason != ReasonNoAccessKey {
		t.Fatalf("a first message: sealed %v (%q), want identified for want of a key", res.Sealed, res.IdentifiedReason)
	}
	// Alice's message carried her access key: the answer goes sealed.
	if res, err = bob.Send(alice.AccountID(), "hi back", nil); err != nil {
		t.Fatal(err)
	}
	if !res.Sealed {
		t.Fatalf("the answer went identified: %q", res.IdentifiedReason)
	}
	nextMessage(t, arec, "hi back")
	bob.Stop()
	if _, err := alice.Send(bob.AccountID(), "while stopped", nil); err != nil {
		t.Fatal(err)
	}
	// Sync takes what is queued and returns.
	if err := bob.Sync(brec); err != nil {
		t.Fatal(err)
	}
	nextMessage(t, brec, "while stopped")
}

// TestMobileGroups: the binding surface makes, renames and shows a
// group.
func TestMobileGroups(t *testing.T) {
	r := newRelay(t)
	alice, err := RegisterMobile(filepath.Join(t.TempDir(), "a"), &r.cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	bob, err := RegisterMobile(filepath.Join(t.TempDir(), "b"), &r.cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	brec := newRecorder()
	bob.Start(brec)
	gid, err := alice.CreateGroup("hikers", bob.AccountID())
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.RenameGroup(gid, "climbers"); err != nil {
		t.Fatal(err)
	}
	g, err := alice.Group(gid)
	if err != nil || g.Name != "climbers" || g.MemberCount() != 2 || !bytes.Equal(g.Member(1), bob.AccountID()) {
		t.Fatalf("alice's group: %+v, %v", g, err)
	}
	if l, err := alice.Groups(); err != nil || l.Count() != 1 || !bytes.Equal(l.GroupID(0), gid) {
		t.Fatalf("alice's groups: %+v, %v", l, err)
	}
	next[*GroupChange](t, brec)
	if gc := next[*GroupChange](t, brec); gc.Name != "climbers" {
		t.Fatalf("bob got %+v", gc)
	}
}
