package messenger

import (
	"bytes"
	"crypto/rand"
	"errors"
	"slices"
	"testing"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/spec"
)

// TestRenameGroup: the admin renames the group, the member takes the
// new name (and revision) from the state it gets; nobody else can
// rename it, and a bad name is refused.
func TestRenameGroup(t *testing.T) {
	r := newRelay(t)
	alice, bob := register(t, r), register(t, r)
	bob.run(t)
	ctx := ctxT(t)
	gid, err := alice.CreateGroup(ctx, "hikers", bob.AccountID())
	if err != nil {
		t.Fatal(err)
	}
	if gc := next[*GroupChange](t, bob.rec); gc.Kind != GroupJoined || gc.Name != "hikers" {
		t.Fatalf("bob got %+v", gc)
	}
	if err := alice.RenameGroup(ctx, gid, "climbers"); err != nil {
		t.Fatal(err)
	}
	if gc := next[*GroupChange](t, bob.rec); gc.Kind != GroupChanged || gc.Name != "climbers" || gc.MemberCount() != 2 {
		t.Fatalf("bob got %+v, want the group renamed climbers", gc)
	}
	for who, m := range map[string]*device{"alice": alice, "bob": bob} {
		g, err := m.Group(gid)
		if err != nil {
			t.Fatal(err)
		}
		if g.Name != "climbers" || g.Revision != 2 || !bytes.Equal(g.Admin, alice.AccountID()) || g.MemberCount() != 2 ||
			!bytes.Equal(g.Member(0), alice.AccountID()) || !bytes.Equal(g.Member(1), bob.AccountID()) || g.Removed {
			t.Fatalf("%s's group: %+v", who, g)
		}
	}
	if err := bob.RenameGroup(ctx, gid, "bob's"); !errors.Is(err, ErrNotAdmin) {
		t.Fatalf("bob renames alice's group: %v, want ErrNotAdmin", err)
	}
	if err := alice.RenameGroup(ctx, gid, "bad\u202ename"); !errors.Is(err, ErrBadGroup) {
		t.Fatalf("a name with a bidirectional override: %v, want ErrBadGroup", err)
	}
	other, err := alice.CreateGroup(ctx, "walkers", bob.AccountID())
	if err != nil {
		t.Fatal(err)
	}
	want := [][]byte{gid, other}
	slices.SortFunc(want, bytes.Compare)
	l, err := alice.Groups()
	if err != nil || l.Count() != 2 || !bytes.Equal(l.GroupID(0), want[0]) || !bytes.Equal(l.GroupID(1), want[1]) {
		t.Fatalf("alice's groups: %+v, %v; want both, by id", l, err)
	}
	if _, err := alice.Group(make([]byte, 16)); !errors.Is(err, ErrNoGroup) {
		t.Fatalf("an unknown group: %v, want ErrNoGroup", err)
	}
	if err := alice.RenameGroup(ctx, make([]byte, 16), "x"); !errors.Is(err, ErrNoGroup) {
		t.Fatalf("renaming an unknown group: %v, want ErrNoGroup", err)
	}
}

// TestAnnounceError: a member the group's state cannot reach (an
// account the relay does not know) is named in an *AnnounceError; the
// group is made all the same and the other member gets it.
func TestAnnounceError(t *testing.T) {
	r := newRelay(t)
	alice, bob := register(t, r), register(t, r)
	bob.run(t)
	ctx := ctxT(t)
	ghost := make([]byte, 16)
	rand.Read(ghost)
	gid, err := alice.CreateGroup(ctx, "club", append(append([]byte{}, ghost...), bob.AccountID()...))
	var ae *AnnounceError
	if !errors.As(err, &ae) || len(ae.Failed) != 1 || !bytes.Equal(ae.Failed[0].Account, ghost) || ae.Failed[0].Err == nil || ae.OwnDevices != nil {
		t.Fatalf("create with an unknown member: %v (%+v), want an AnnounceError naming it alone", err, ae)
	}
	if gid == nil {
		t.Fatal("no group id with the AnnounceError")
	}
	if gc := next[*GroupChange](t, bob.rec); !bytes.Equal(gc.GroupID, gid) || gc.MemberCount() != 3 {
		t.Fatalf("bob got %+v", gc)
	}
	// Removed, it is told so (and missed again); the change holds.
	if err := alice.ChangeGroup(ctx, gid, nil, ghost); !errors.As(err, &ae) || len(ae.Failed) != 1 {
		t.Fatalf("removing the unknown member: %v, want an AnnounceError naming it", err)
	}
	if g, err := alice.Group(gid); err != nil || g.MemberCount() != 2 || g.Revision != 2 {
		t.Fatalf("after the removal: %+v, %v", g, err)
	}
	if gc := next[*GroupChange](t, bob.rec); gc.Kind != GroupChanged || gc.MemberCount() != 2 {
		t.Fatalf("bob got %+v", gc)
	}
}

// TestAnnounceUnreachable: with the relay down, a FailFast Messenger's
// ChangeGroup ends at the first send with ErrUnreachable, not an
// AnnounceError listing every member.
func TestAnnounceUnreachable(t *testing.T) {
	r := newRelay(t)
	alice, bob, carol := register(t, r), register(t, r), register(t, r)
	ctx := ctxT(t)
	gid, err := alice.CreateGroup(ctx, "club", append(append([]byte{}, bob.AccountID()...), carol.AccountID()...))
	if err != nil {
		t.Fatal(err)
	}
	alice.Close()
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	cfg := r.cfg
	cfg.SendOnly, cfg.FailFast = true, true
	m, err := Open(alice.dir, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	err = m.ChangeGroup(ctx, gid, nil, nil)
	var ae *AnnounceError
	if !errors.Is(err, ErrUnreachable) || errors.As(err, &ae) || ctx.Err() != nil {
		t.Fatalf("change with the relay down: %v, want ErrUnreachable alone before the deadline", err)
	}
}

// TestAnnounceRevoked: a device removed from its account gets
// UNKNOWN_DEVICE at the first send of a group's state, not an
// AnnounceError listing every member.
func TestAnnounceRevoked(t *testing.T) {
	r := newRelay(t)
	alice, bob, carol := register(t, r), register(t, r), register(t, r)
	laptop := link(t, r, alice)
	ctx := ctxT(t)
	if err := alice.RevokeDevice(ctx, int64(laptop.DeviceID())); err != nil {
		t.Fatal(err)
	}
	_, err := laptop.CreateGroup(ctx, "club", append(append([]byte{}, bob.AccountID()...), carol.AccountID()...))
	var ae *AnnounceError
	if spec.Code(client.ErrorCode(err)) != spec.CodeUnknownDevice || errors.As(err, &ae) {
		t.Fatalf("create on a removed device: %v, want UNKNOWN_DEVICE alone", err)
	}
}
