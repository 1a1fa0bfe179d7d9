package messenger

import (
	"bytes"
	"encoding/json"
	"slices"
	"sync"
	"testing"

	"github.com/pigeonhole/pigeonhole/spec"
)

// memGroups is a GroupStates in memory, as a program would keep group
// state in its own files or tables.
type memGroups struct {
	mu   sync.Mutex
	recs map[string][]byte
}

func (g *memGroups) LoadGroup(gid []byte) ([]byte, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.recs[string(gid)], nil
}

func (g *memGroups) GroupIDs() ([][]byte, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out [][]byte
	for id := range g.recs {
		out = append(out, []byte(id))
	}
	return out, nil
}

func (g *memGroups) UpdateGroup(gid []byte, f func([]byte) ([]byte, error)) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	b, err := f(g.recs[string(gid)])
	if err != nil || b == nil {
		return err
	}
	g.recs[string(gid)] = b
	return nil
}

// TestGroupStates: with UseGroupStates, group state lives in the
// program's GroupStates (never in the store's records), and group sends
// work on it: text, typing and a delete.
func TestGroupStates(t *testing.T) {
	r := newRelay(t)
	alice, bob := register(t, r), register(t, r)
	gs := &memGroups{recs: map[string][]byte{}}
	alice.UseGroupStates(gs)
	bob.run(t)
	ctx := ctxT(t)
	gid, err := alice.CreateGroup(ctx, "club", bob.AccountID())
	if err != nil {
		t.Fatal(err)
	}
	next[*GroupChange](t, bob.rec)
	res, err := alice.SendGroup(ctx, gid, &Content{Text: "hello club"})
	if err != nil || res.Devices != 1 {
		t.Fatalf("group send: %+v, %v", res, err)
	}
	if m := nextMessage(t, bob.rec, "hello club"); !bytes.Equal(m.GroupID, gid) {
		t.Fatalf("bob got %+v", m)
	}
	if _, err := alice.SendGroupContent(ctx, gid, &spec.Content{Body: &spec.Content_Delete{Delete: &spec.Delete{Id: res.ID}}}); err != nil {
		t.Fatal(err)
	}
	rec, _ := gs.LoadGroup(gid)
	var g group
	if err := json.Unmarshal(rec, &g); err != nil {
		t.Fatalf("record %q: %v", rec, err)
	}
	if g.Name != "club" || !slices.Contains(g.KeySentTo, deviceKey(bob.AccountID(), 1)) {
		t.Fatalf("record %+v: want the group with bob's device given the key", g)
	}
	if b, err := alice.store.Get(groupKey(gid)); err != nil || b != nil {
		t.Fatalf("the store has the group too: %q, %v", b, err)
	}
	if l, err := alice.Groups(); err != nil || l.Count() != 1 || !bytes.Equal(l.GroupID(0), gid) {
		t.Fatalf("alice's groups: %+v, %v; want the one in GroupStates", l, err)
	}
	if _, err := alice.SendGroupContent(ctx, gid, &spec.Content{Body: &spec.Content_Typing{Typing: &spec.Typing{Started: true}}}); err != nil {
		t.Fatal(err)
	}
	if ty := next[*Typing](t, bob.rec); !bytes.Equal(ty.GroupID, gid) || !ty.Started {
		t.Fatalf("bob got %+v", ty)
	}
}
