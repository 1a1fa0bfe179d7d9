package messenger

import (
	"bytes"
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// patience bounds every wait: generous, for a loaded 2-core machine.
const patience = 60 * time.Second

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*patience)
	t.Cleanup(cancel)
	return ctx
}

func newRelay(t *testing.T) *testRelay {
	t.Helper()
	r, err := startTestRelay(t.TempDir(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.stop(); err != nil {
			t.Errorf("stop relay: %v", err)
		}
	})
	return r
}

// recorder is a Handler that hands every event to the test.
type recorder struct {
	events chan any
	// fail, if set, is asked before a message is taken; a non-nil error
	// is the handler's answer.
	mu   sync.Mutex
	fail func(*Message) error
}

func newRecorder() *recorder { return &recorder{events: make(chan any, 1000)} }

func (r *recorder) OnMessage(m *Message) error {
	r.mu.Lock()
	fail := r.fail
	r.mu.Unlock()
	if fail != nil {
		if err := fail(m); err != nil {
			r.events <- err
			return err
		}
	}
	r.events <- m
	return nil
}
func (r *recorder) OnReceipt(x *Receipt) error      { r.events <- x; return nil }
func (r *recorder) OnTyping(x *Typing) error        { r.events <- x; return nil }
func (r *recorder) OnGroup(x *GroupChange) error    { r.events <- x; return nil }
func (r *recorder) OnDevices(x *DeviceChange) error { r.events <- x; return nil }
func (r *recorder) OnDelete(x *Delete) error        { r.events <- x; return nil }
func (r *recorder) OnDropped(x *Dropped)            { r.events <- x }
func (r *recorder) OnDrained()                      { r.events <- drainedEvent{} }
func (r *recorder) OnConnection(connected bool, reason string, _ int64) {
	r.events <- connState{connected, reason}
}

// drainedEvent is an OnDrained call.
type drainedEvent struct{}

type connState struct {
	connected bool
	reason    string
}

// next waits for the next event of type T, skipping others.
func next[T any](t *testing.T, r *recorder) T {
	t.Helper()
	deadline := time.After(patience)
	for {
		select {
		case ev := <-r.events:
			if x, ok := ev.(T); ok {
				return x
			}
		case <-deadline:
			var zero T
			t.Fatalf("no %T within %v", zero, patience)
			return zero
		}
	}
}

// nextMessage waits for a message with the text, skipping other events.
func nextMessage(t *testing.T, r *recorder, text string) *Message {
	t.Helper()
	deadline := time.After(patience)
	for {
		select {
		case ev := <-r.events:
			if m, ok := ev.(*Message); ok && m.Text == text {
				return m
			}
		case <-deadline:
			t.Fatalf("no message %q within %v", text, patience)
			return nil
		}
	}
}

// device is a registered Messenger receiving into rec.
type device struct {
	*Messenger
	dir string
	rec *recorder
}

// register makes a new account's first device.
func register(t *testing.T, r *testRelay) *device {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "dev")
	m, err := Register(ctxT(t), dir, &r.cfg, "")
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return &device{Messenger: m, dir: dir, rec: newRecorder()}
}

// run starts receiving in the background until the test ends.
func (d *device) run(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, d.rec) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(patience):
			t.Error("Run did not return")
		}
	})
}

// link links a new device to primary's account.
func link(t *testing.T, r *testRelay, primary *device) *device {
	t.Helper()
	ctx := ctxT(t)
	dir := filepath.Join(t.TempDir(), "linked")
	l, err := StartLink(ctx, dir, &r.cfg, "second")
	if err != nil {
		t.Fatalf("start link: %v", err)
	}
	if code, err := LinkCheckCode(l.URI); err != nil || code != l.CheckCode {
		t.Fatalf("check code %q, %v; the new device shows %q", code, err, l.CheckCode)
	}
	if err := primary.ApproveLink(ctx, l.URI); err != nil {
		t.Fatalf("approve: %v", err)
	}
	m, err := l.Wait(ctx)
	if err != nil {
		t.Fatalf("wait: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if !bytes.Equal(m.AccountID(), primary.AccountID()) || m.DeviceID() < 2 {
		t.Fatalf("linked as %x/%d", m.AccountID(), m.DeviceID())
	}
	return &device{Messenger: m, dir: dir, rec: newRecorder()}
}

func TestSendBothWays(t *testing.T) {
	r := newRelay(t)
	alice, bob := register(t, r), register(t, r)
	alice.run(t)
	bob.run(t)
	ctx := ctxT(t)
	res, err := alice.Send(ctx, bob.AccountID(), &Content{Text: "hello bob"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Devices != 1 || len(res.ID) != MessageIDSize || res.OwnCopyFailed {
		t.Fatalf("send result %+v", res)
	}
	got := nextMessage(t, bob.rec, "hello bob")
	if !bytes.Equal(got.From, alice.AccountID()) || got.FromDevice != 1 || !bytes.Equal(got.ID, res.ID) || got.FromSelf || got.GroupID != nil {
		t.Fatalf("bob got %+v", got)
	}
	// Bob's device acked it and owes a delivered receipt, which it
	// sends once its queue is drained.
	rc := next[*Receipt](t, alice.rec)
	if rc.Read || rc.Count() != 1 || !bytes.Equal(rc.ID(0), res.ID) || !bytes.Equal(rc.From, bob.AccountID()) {
		t.Fatalf("alice got receipt %+v", rc)
	}
	if _, err := bob.Send(ctx, alice.AccountID(), &Content{Text: "hi alice"}); err != nil {
		t.Fatal(err)
	}
	nextMessage(t, alice.rec, "hi alice")
	if err := bob.SendReadReceipt(ctx, alice.AccountID(), nil, got.ID); err != nil {
		t.Fatal(err)
	}
	if rc := next[*Receipt](t, alice.rec); !rc.Read || !bytes.Equal(rc.ID(0), res.ID) {
		t.Fatalf("alice got receipt %+v, want read", rc)
	}
}
