package messenger

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
)

// TestStaleDevicesAndOwnCopy: Alice has a session with Bob's only device
// when Bob links a second one; her next send is refused as stale, meets
// the new device and lands on both. Alice's own second device gets a
// copy of what she sends.
func TestStaleDevicesAndOwnCopy(t *testing.T) {
	r := newRelay(t)
	alice, bob := register(t, r), register(t, r)
	ctx := ctxT(t)
	if _, err := alice.Send(ctx, bob.AccountID(), &Content{Text: "one"}); err != nil {
		t.Fatal(err)
	}
	bob2 := link(t, r, bob)
	alice2 := link(t, r, alice)
	bob.run(t)
	bob2.run(t)
	alice2.run(t)
	res, err := alice.Send(ctx, bob.AccountID(), &Content{Text: "two"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Devices != 2 || res.OwnCopyFailed {
		t.Fatalf("send after bob linked a device: %+v", res)
	}
	nextMessage(t, bob.rec, "one")
	nextMessage(t, bob.rec, "two")
	if m := nextMessage(t, bob2.rec, "two"); !bytes.Equal(m.ID, res.ID) {
		t.Fatalf("bob's second device got %+v", m)
	}
	cp := nextMessage(t, alice2.rec, "two")
	if !cp.FromSelf || !bytes.Equal(cp.To, bob.AccountID()) || !bytes.Equal(cp.ID, res.ID) {
		t.Fatalf("alice's second device got %+v, want her copy of the message to bob", cp)
	}
	// Sending again with the same id (an app retrying after a timeout)
	// lands once.
	again, err := alice.Send(ctx, bob.AccountID(), &Content{Text: "two", ID: res.ID})
	if err != nil || !again.Duplicate {
		t.Fatalf("retried send: %+v, %v; want a duplicate", again, err)
	}
}

func TestGroupSend(t *testing.T) {
	r := newRelay(t)
	alice, bob, carol := register(t, r), register(t, r), register(t, r)
	for _, d := range []*device{alice, bob, carol} {
		d.run(t)
	}
	ctx := ctxT(t)
	members := append(append([]byte{}, bob.AccountID()...), carol.AccountID()...)
	gid, err := alice.CreateGroup(ctx, "hikers", members)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []*device{bob, carol} {
		g := next[*GroupChange](t, d.rec)
		if g.Kind != GroupJoined || !bytes.Equal(g.GroupID, gid) || g.Name != "hikers" || g.MemberCount() != 3 || !bytes.Equal(g.Admin, alice.AccountID()) {
			t.Fatalf("group change %+v", g)
		}
	}
	res, err := alice.SendGroup(ctx, gid, &Content{Text: "trail at 9"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Devices != 2 {
		t.Fatalf("group send reached %d devices, want 2", res.Devices)
	}
	for _, d := range []*device{bob, carol} {
		m := nextMessage(t, d.rec, "trail at 9")
		if !bytes.Equal(m.GroupID, gid) || !bytes.Equal(m.From, alice.AccountID()) {
			t.Fatalf("got %+v", m)
		}
	}
	if _, err := bob.SendGroup(ctx, gid, &Content{Text: "see you"}); err != nil {
		t.Fatal(err)
	}
	nextMessage(t, alice.rec, "see you")
	nextMessage(t, carol.rec, "see you")

	// Carol removed: she learns it, and what follows is not for her.
	if err := alice.ChangeGroup(ctx, gid, nil, carol.AccountID()); err != nil {
		t.Fatal(err)
	}
	if g := next[*GroupChange](t, carol.rec); g.Kind != GroupRemoved {
		t.Fatalf("carol got %+v", g)
	}
	if g := next[*GroupChange](t, bob.rec); g.Kind != GroupChanged || g.MemberCount() != 2 {
		t.Fatalf("bob got %+v", g)
	}
	if _, err := carol.SendGroup(ctx, gid, &Content{Text: "still here?"}); !errors.Is(err, ErrNotMember) {
		t.Fatalf("carol sends after removal: %v", err)
	}
	res, err = alice.SendGroup(ctx, gid, &Content{Text: "two of us"})
	if err != nil || res.Devices != 1 {
		t.Fatalf("send after removal: %+v, %v", res, err)
	}
	nextMessage(t, bob.rec, "two of us")
}

// TestRevokedDeviceDropped: Bob revokes his second device; Alice's next
// send names it, is refused as stale (an extra device), forgets it and
// lands on Bob's first device only.
func TestRevokedDeviceDropped(t *testing.T) {
	r := newRelay(t)
	alice, bob := register(t, r), register(t, r)
	bob2 := link(t, r, bob)
	ctx := ctxT(t)
	if res, err := alice.Send(ctx, bob.AccountID(), &Content{Text: "both"}); err != nil || res.Devices != 2 {
		t.Fatalf("send to both: %+v, %v", res, err)
	}
	l, err := bob.Devices(ctx)
	if err != nil || l.Count() != 2 || !l.IsThis(0) || l.Name(1) != "second" || l.ID(1) != bob2.DeviceID() {
		t.Fatalf("devices: %+v, %v", l, err)
	}
	if err := bob2.RevokeDevice(ctx, 1); err == nil {
		t.Fatal("a linked device revoked the primary")
	}
	if err := bob.RevokeDevice(ctx, bob2.DeviceID()); err != nil {
		t.Fatal(err)
	}
	bob.run(t)
	res, err := alice.Send(ctx, bob.AccountID(), &Content{Text: "one left"})
	if err != nil || res.Devices != 1 {
		t.Fatalf("send after the revoke: %+v, %v", res, err)
	}
	nextMessage(t, bob.rec, "one left")
}

// TestDeviceNames: the name given to Register, cut to e2e.MaxDeviceName
// bytes on a rune boundary, is what the account's devices list.
func TestDeviceNames(t *testing.T) {
	r := newRelay(t)
	ctx := ctxT(t)
	long := strings.Repeat("é", e2e.MaxDeviceName) // two bytes each
	m, err := Register(ctx, filepath.Join(t.TempDir(), "phone"), &r.cfg, long)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	l, err := m.Devices(ctx)
	want := strings.Repeat("é", e2e.MaxDeviceName/2)
	if err != nil || l.Count() != 1 || l.Name(0) != want || l.NameUnreadable(0) || DeviceName(long) != want {
		t.Fatalf("devices %+v (%v), want one named %q", l, err, want)
	}
}
