package messenger

import (
	"bytes"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
	"github.com/pigeonhole/pigeonhole/spec"
)

// openQueued decrypts what the relay holds for a device that does not
// run, with a device opened on its directory, as its own receive loop
// would (sealed envelopes opened first).
func openQueued(t *testing.T, r *testRelay, d *device) []*spec.Content {
	t.Helper()
	var out []*spec.Content
	for _, s := range queued(t, r, d.AccountID(), uint32(d.DeviceID())) {
		env := &client.Envelope{Sender: s.GetSender(), SenderDevice: s.GetSenderDevice(), Type: s.GetType(), Content: s.GetContent(), Sealed: s.GetSealed()}
		var err error
		if env.Sealed {
			if env, err = d.OpenSealed(ctxT(t), env); err != nil {
				t.Fatal(err)
			}
		}
		dev, err := e2e.Open(d.dir)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := dev.Decrypt(ctxT(t), env)
		if err != nil {
			t.Fatal(err)
		}
		var c spec.Content
		if err := proto.Unmarshal(plain, &c); err != nil {
			t.Fatal(err)
		}
		out = append(out, &c)
	}
	return out
}

// TestSendDelete: a delete for everyone reaches the recipient naming the
// message, and this account's other device gets it naming the
// conversation too.
func TestSendDelete(t *testing.T) {
	r := newRelay(t)
	alice, bob := register(t, r), register(t, r)
	laptop := link(t, r, alice)
	ctx := ctxT(t)
	res, err := alice.Send(ctx, bob.AccountID(), &Content{Text: "oops"})
	if err != nil {
		t.Fatal(err)
	}
	del, err := alice.SendDelete(ctx, bob.AccountID(), res.ID)
	if err != nil || del.Devices != 1 || del.OwnCopyFailed {
		t.Fatalf("delete: %+v, %v", del, err)
	}
	got := openQueued(t, r, bob)
	if len(got) != 2 || !bytes.Equal(got[1].GetDelete().GetId(), res.ID) || got[1].GetDelete().GetDestination() != nil {
		t.Fatalf("bob has %v", got)
	}
	if !bytes.Equal(got[1].GetAccessKey(), alice.ownAccessKey()) {
		t.Fatal("the delete does not carry alice's access key")
	}
	copies := openQueued(t, r, laptop)
	last := copies[len(copies)-1].GetDelete()
	if !bytes.Equal(last.GetId(), res.ID) || !bytes.Equal(last.GetDestination(), bob.AccountID()) {
		t.Fatalf("the laptop has %v", copies)
	}
}

// TestSendContentAttachment: any Content goes as Send's text does, and
// its id makes a retried send land once.
func TestSendContentAttachment(t *testing.T) {
	r := newRelay(t)
	alice, bob := register(t, r), register(t, r)
	ctx := ctxT(t)
	id := []byte("8 bytes!")
	c := &spec.Content{Id: id, Body: &spec.Content_Attachment{Attachment: &spec.Attachment{BlobId: "blob", FileName: "a.txt", Size: 3}}}
	res, err := alice.SendContent(ctx, bob.AccountID(), c, nil)
	if err != nil || res.Devices != 1 || !bytes.Equal(res.ID, id) {
		t.Fatalf("send: %+v, %v", res, err)
	}
	again, err := alice.SendContent(ctx, bob.AccountID(), &spec.Content{Id: id, Body: c.Body}, nil)
	if err != nil || !again.Duplicate {
		t.Fatalf("retry: %+v, %v; want a duplicate", again, err)
	}
	got := openQueued(t, r, bob)
	if len(got) != 1 || got[0].GetAttachment().GetFileName() != "a.txt" {
		t.Fatalf("bob has %v", got)
	}
}

// TestFailFastSend: with Config.FailFast, a send to a relay that is down
// fails at once with ErrUnreachable, long before its context ends.
func TestFailFastSend(t *testing.T) {
	r := newRelay(t)
	alice, bob := register(t, r), register(t, r)
	cfg := r.cfg
	cfg.SendOnly, cfg.FailFast = true, true
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	m, err := Open(alice.dir, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := ctxT(t)
	_, err = m.Send(ctx, bob.AccountID(), &Content{Text: "anyone?"})
	if !errors.Is(err, ErrUnreachable) || ctx.Err() != nil {
		t.Fatalf("send with the relay down: %v (context: %v), want ErrUnreachable before the deadline", err, ctx.Err())
	}
}
