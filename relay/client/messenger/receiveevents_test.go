package messenger

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/pigeonhole/pigeonhole/relay/client/media"
	"github.com/pigeonhole/pigeonhole/spec"
)

// TestDeleteEvent: a delete for everyone reaches the recipient as a
// Delete naming the message, and its other devices' copy of it names
// the conversation; Within applies the receiver's limit.
func TestDeleteEvent(t *testing.T) {
	r := newRelay(t)
	alice, bob := register(t, r), register(t, r)
	alice2 := link(t, r, alice)
	bob.run(t)
	alice2.run(t)
	ctx := ctxT(t)
	res, err := alice.Send(ctx, bob.AccountID(), &Content{Text: "oops"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendDelete(ctx, bob.AccountID(), res.ID); err != nil {
		t.Fatal(err)
	}
	got := nextMessage(t, bob.rec, "oops")
	d := next[*Delete](t, bob.rec)
	if !bytes.Equal(d.MessageID, res.ID) || !bytes.Equal(d.From, alice.AccountID()) || d.FromSelf || d.To != nil || d.GroupID != nil || d.SentAtMillis == 0 {
		t.Fatalf("bob got delete %+v", d)
	}
	if !d.Within(got.ReceivedAtMillis) {
		t.Fatalf("a delete right after the message is beyond the %d ms limit", d.LimitMillis())
	}
	if d.LimitMillis() != DefaultDeleteLimitMillis {
		t.Fatalf("limit %d ms, want the default", d.LimitMillis())
	}
	if long := time.Now().Add(-DefaultDeleteLimitMillis*time.Millisecond - time.Minute).UnixMilli(); d.Within(long) {
		t.Fatal("a message received 48 h ago may still be deleted")
	}
	own := next[*Delete](t, alice2.rec)
	if !own.FromSelf || !bytes.Equal(own.To, bob.AccountID()) || !bytes.Equal(own.MessageID, res.ID) {
		t.Fatalf("alice's other device got delete %+v, want her copy naming bob", own)
	}

	// A receiver with a limit of its own.
	short := r.cfg
	short.DeleteLimitMillis = 1000
	carol := register(t, &testRelay{cfg: short})
	carol.run(t)
	res, err = alice.Send(ctx, carol.AccountID(), &Content{Text: "to carol"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendDelete(ctx, carol.AccountID(), res.ID); err != nil {
		t.Fatal(err)
	}
	d = next[*Delete](t, carol.rec)
	if d.LimitMillis() != 1000 {
		t.Fatalf("limit %d ms, want carol's 1000", d.LimitMillis())
	}
	if d.Within(time.Now().Add(-2 * time.Second).UnixMilli()) {
		t.Fatal("a message received 2 s ago may be deleted under a 1 s limit")
	}
	if !d.Within(time.Now().UnixMilli()) {
		t.Fatal("a message received now may not be deleted under a 1 s limit")
	}
}

// TestAttachmentEvent: a file's pointer reaches the recipient as a
// Message with its Attachment, which FetchAttachment downloads and
// media.Decrypt turns back into the file; an impossible one is refused
// before anything is downloaded.
func TestAttachmentEvent(t *testing.T) {
	rel, err := startRelayWith(t.TempDir(), "127.0.0.1:0", true, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rel.stop() })
	alice, bob := register(t, rel), register(t, rel)
	bob.run(t)
	ctx := ctxT(t)
	file := make([]byte, 100_000)
	rand.Read(file)
	key, err := media.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	var sealed bytes.Buffer
	digest, err := media.Encrypt(&sealed, bytes.NewReader(file), int64(len(file)), key)
	if err != nil {
		t.Fatal(err)
	}
	var blobID string
	err = alice.conn(ctx, func(c *clientConn) (err error) {
		blobID, err = c.UploadBlob(ctx, &sealed, media.CiphertextSize(int64(len(file))))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	c := &spec.Content{Body: &spec.Content_Attachment{Attachment: &spec.Attachment{
		BlobId: blobID, Key: key, Digest: digest, Size: uint64(len(file)), FileName: "photo.jpg"}}}
	if _, err := alice.SendContent(ctx, bob.AccountID(), c, nil); err != nil {
		t.Fatal(err)
	}
	var m *Message
	for m == nil || m.Attachment == nil {
		m = next[*Message](t, bob.rec)
	}
	a := m.Attachment
	if a.BlobID != blobID || a.FileName != "photo.jpg" || a.Size != int64(len(file)) || !bytes.Equal(a.Key, key) || !bytes.Equal(a.Digest, digest) || m.Text != "" {
		t.Fatalf("bob got %+v with %+v", m, a)
	}
	body, err := bob.FetchAttachment(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	var out bytes.Buffer
	if err := media.Decrypt(&out, body, a.Size, a.Key, a.Digest); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), file) {
		t.Fatal("the file came back different")
	}
	bad := *a
	bad.Key = key[:16]
	if _, err := bob.FetchAttachment(ctx, &bad); !errors.Is(err, ErrBadAttachment) {
		t.Fatalf("a 16-byte key: %v, want ErrBadAttachment", err)
	}
	bad = *a
	bad.Size = media.MaxSize + 1
	if _, err := bob.FetchAttachment(ctx, &bad); !errors.Is(err, ErrBadAttachment) {
		t.Fatalf("an oversized file: %v, want ErrBadAttachment", err)
	}
}

// TestTranscriptEvent: what this account sends from one device reaches
// its other device as a FromSelf Message naming the recipient, sealed
// flag and all.
func TestTranscriptEvent(t *testing.T) {
	r := newRelay(t)
	alice, bob := register(t, r), register(t, r)
	alice2 := link(t, r, alice)
	alice2.run(t)
	ctx := ctxT(t)
	c := &spec.Content{Body: &spec.Content_Text{Text: &spec.Text{Body: "the file"}}}
	copyOf := &spec.Content{Body: &spec.Content_Sent{Sent: &spec.SentTranscript{Destination: bob.AccountID(), Text: &spec.Text{Body: "sent the file photo.jpg"}}}}
	if _, err := alice.SendContent(ctx, bob.AccountID(), c, copyOf); err != nil {
		t.Fatal(err)
	}
	m := nextMessage(t, alice2.rec, "sent the file photo.jpg")
	if !m.FromSelf || !bytes.Equal(m.To, bob.AccountID()) || !bytes.Equal(m.From, alice.AccountID()) || m.FromDevice != 1 || m.SentAtMillis == 0 || m.ReceivedAtMillis == 0 {
		t.Fatalf("alice's other device got %+v", m)
	}
	// A transcript from another account is no transcript.
	if _, err := bob.SendContent(ctx, alice.AccountID(), copyOf, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Send(ctx, alice.AccountID(), &Content{Text: "after"}); err != nil {
		t.Fatal(err)
	}
	if m := next[*Message](t, alice2.rec); m.Text != "after" {
		t.Fatalf("alice's device took %+v from bob", m)
	}
}

// TestDrained: RunUntilDrained hands over what is queued, says
// OnDrained, and returns; also when the Messenger's connection was
// opened earlier by a send and still holds the relay's "drained" from
// then (the bug: it returned at once, handing over nothing).
func TestDrained(t *testing.T) {
	r := newRelay(t)
	alice, bob := register(t, r), register(t, r)
	ctx := ctxT(t)
	for _, text := range []string{"one", "two"} {
		if _, err := alice.Send(ctx, bob.AccountID(), &Content{Text: text}); err != nil {
			t.Fatal(err)
		}
	}
	if err := bob.RunUntilDrained(ctx, bob.rec); err != nil {
		t.Fatal(err)
	}
	want := []string{"one", "two", "drained"}
	if got := taken(bob.rec); !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	// Bob's send opens a receiving connection on which the relay says
	// "drained" at once (the queue is empty); Alice's message comes
	// after it.
	if _, err := bob.Send(ctx, alice.AccountID(), &Content{Text: "hi"}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, bob.AccountID(), &Content{Text: "three"}); err != nil {
		t.Fatal(err)
	}
	if err := bob.RunUntilDrained(ctx, bob.rec); err != nil {
		t.Fatal(err)
	}
	if got := taken(bob.rec); !slices.Equal(got, []string{"three", "drained"}) {
		t.Fatalf("after a send: got %q, want three, drained", got)
	}
}

// TestMobileSyncAfterSend: Mobile.Sync after a Send gets what came.
func TestMobileSyncAfterSend(t *testing.T) {
	r := newRelay(t)
	alice := register(t, r)
	bob, err := RegisterMobile(t.TempDir()+"/b", &r.cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	if _, err := bob.Send(alice.AccountID(), "hi", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctxT(t), bob.AccountID(), &Content{Text: "answer"}); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	if err := bob.Sync(rec); err != nil {
		t.Fatal(err)
	}
	if got := taken(rec); !slices.Equal(got, []string{"answer", "drained"}) {
		t.Fatalf("Sync after Send: got %q", got)
	}
}

// taken is what rec got so far: message texts and "drained".
func taken(rec *recorder) []string {
	var out []string
	for {
		select {
		case ev := <-rec.events:
			switch x := ev.(type) {
			case *Message:
				out = append(out, x.Text)
			case drainedEvent:
				out = append(out, "drained")
			}
		default:
			return out
		}
	}
}

// stopper is a recorder whose handler ends Run after the message with
// text stop.
type stopper struct {
	*recorder
	stop   string
	cancel context.CancelFunc
}

func (s *stopper) OnMessage(m *Message) error {
	err := s.recorder.OnMessage(m)
	if m.Text == s.stop {
		s.cancel()
	}
	return err
}

// TestRunStoppedByHandler: a handler that ends Run's context (as
// "pigeon listen -n" does) gets nothing more; the delivered receipts
// owed go out as Run ends, and what was not handed over comes next time.
func TestRunStoppedByHandler(t *testing.T) {
	r := newRelay(t)
	alice, bob := register(t, r), register(t, r)
	alice.run(t)
	ctx := ctxT(t)
	var first []byte
	for _, text := range []string{"one", "two"} {
		res, err := alice.Send(ctx, bob.AccountID(), &Content{Text: text})
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = res.ID
		}
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := &stopper{recorder: newRecorder(), stop: "one", cancel: cancel}
	if err := bob.Run(runCtx, s); err != nil {
		t.Fatal(err)
	}
	if got := taken(s.recorder); !slices.Equal(got, []string{"one"}) {
		t.Fatalf("after the handler stopped Run it got %q", got)
	}
	rc := next[*Receipt](t, alice.rec)
	if rc.Count() != 1 || !bytes.Equal(rc.ID(0), first) {
		t.Fatalf("alice got receipt %+v, want one for the first message", rc)
	}
	if err := bob.RunUntilDrained(ctx, bob.rec); err != nil {
		t.Fatal(err)
	}
	if got := taken(bob.rec); !slices.Equal(got, []string{"two", "drained"}) {
		t.Fatalf("the next run got %q, want two, drained", got)
	}
}

// TestDroppedEvent: what the messenger does not hand over as an event
// is said with OnDropped and a reason.
func TestDroppedEvent(t *testing.T) {
	r := newRelay(t)
	alice, bob := register(t, r), register(t, r)
	bob.run(t)
	ctx := ctxT(t)
	gid := make([]byte, 16)
	rand.Read(gid)
	update := &spec.GroupUpdate{Name: "club", Members: [][]byte{alice.AccountID(), bob.AccountID()}, Admin: alice.AccountID(), Salt: make([]byte, 16), Revision: 1}
	for _, c := range []*spec.Content{
		{Body: &spec.Content_GroupUpdate{GroupUpdate: update}},               // no group: not a kind one-to-one messages have
		{GroupId: gid, Body: &spec.Content_GroupUpdate{GroupUpdate: update}}, // the id is not bound to the admin
	} {
		if _, err := alice.SendContent(ctx, bob.AccountID(), c, nil); err != nil {
			t.Fatal(err)
		}
	}
	d := next[*Dropped](t, bob.rec)
	if d.Reason != DropUnsupported || !bytes.Equal(d.From, alice.AccountID()) || d.FromDevice != 1 {
		t.Fatalf("got %+v, want an unsupported kind from alice", d)
	}
	d = next[*Dropped](t, bob.rec)
	if d.Reason != DropGroupUpdate || d.NotAdmin || !bytes.Equal(d.GroupID, gid) || d.GroupName != "club" {
		t.Fatalf("got %+v, want a malformed group update", d)
	}
}
