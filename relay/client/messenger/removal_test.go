package messenger

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
)

// TestRemovedMemberCannotReadOn: Carol, removed while offline, still
// holds the sender key Alice gave her; Alice's next group message is
// under a new key, which Carol's device cannot open.
func TestRemovedMemberCannotReadOn(t *testing.T) {
	r := newRelay(t)
	alice, bob, carol := register(t, r), register(t, r), register(t, r)
	alice.run(t)
	bob.run(t)
	ctx := ctxT(t)
	cctx, stopCarol := context.WithCancel(ctx)
	carolDone := make(chan error, 1)
	go func() { carolDone <- carol.Run(cctx, carol.rec) }()
	members := append(append([]byte{}, bob.AccountID()...), carol.AccountID()...)
	gid, err := alice.CreateGroup(ctx, "club", members)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendGroup(ctx, gid, &Content{Text: "welcome"}); err != nil {
		t.Fatal(err)
	}
	nextMessage(t, carol.rec, "welcome")
	stopCarol()
	select {
	case <-carolDone:
	case <-time.After(patience):
		t.Fatal("carol's Run did not return")
	}
	// A group message under the key Carol has: she can open it.
	probe := func() error {
		ct, err := alice.store.GroupEncrypt(ctx, gid, []byte("probe"))
		if err != nil {
			t.Fatal(err)
		}
		env := &client.Envelope{Sender: alice.AccountID(), SenderDevice: 1, Type: e2e.TypeGroup, Content: e2e.GroupContent(gid, ct)}
		_, _, err = carol.store.DecryptGroup(ctx, env)
		return err
	}
	if err := probe(); err != nil {
		t.Fatalf("carol opens a message under the key she was given: %v", err)
	}
	if err := alice.ChangeGroup(ctx, gid, nil, carol.AccountID()); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendGroup(ctx, gid, &Content{Text: "after carol"}); err != nil {
		t.Fatal(err)
	}
	nextMessage(t, bob.rec, "after carol")
	if err := probe(); !errors.Is(err, e2e.ErrNoSenderKey) {
		t.Fatalf("carol opens a message sent after her removal: %v", err)
	}
}
