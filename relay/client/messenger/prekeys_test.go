package messenger

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"
)

// signalHandler is a slog.Handler that hands each record's message to
// the test.
type signalHandler struct{ msgs chan string }

func (h signalHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h signalHandler) Handle(_ context.Context, r slog.Record) error {
	select {
	case h.msgs <- r.Message:
	default:
	}
	return nil
}
func (h signalHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h signalHandler) WithGroup(string) slog.Handler      { return h }

// TestPreKeyRefill: Register uploads the first one-time KEM prekeys
// (the registration itself carries only the last-resort one); when key
// fetches leave Bob's device with fewer than the relay's threshold (10),
// the relay says so and Run uploads new one-time prekeys of both kinds
// up to Config.PreKeys.
func TestPreKeyRefill(t *testing.T) {
	r := newRelay(t)
	alice := register(t, r)
	cfg := r.cfg
	cfg.PreKeys = 11
	ctx := ctxT(t)
	dir := filepath.Join(t.TempDir(), "bob")
	if m, err := Register(ctx, dir, &cfg, ""); err != nil {
		t.Fatal(err)
	} else {
		m.Close()
	}
	logs := signalHandler{msgs: make(chan string, 100)}
	bobM, err := OpenStore(mustOpenDir(t, dir), &cfg, slog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	bob := &device{Messenger: bobM, dir: dir, rec: newRecorder()}
	t.Cleanup(func() { bobM.Close() })
	wantCounts(t, bob, 11, 11)
	bob.run(t)
	deadline := time.After(patience)
	for range 2 { // 11 - 2 = 9 left: under the threshold
		err := alice.conn(ctx, func(c *clientConn) error { _, err := c.FetchKeys(ctx, bob.AccountID()); return err })
		if err != nil {
			t.Fatal(err)
		}
	}
	// Each fetch also claimed a one-time KEM prekey, so the same low
	// notice makes the device top up its KEM prekeys right after the
	// X25519 ones.
	waitLog(t, logs, deadline, "uploaded new one-time prekeys")
	waitLog(t, logs, deadline, "uploaded new one-time KEM prekeys")
	wantCounts(t, bob, 11, 11)
}

// TestRefillPreKeys: a program with a receive loop of its own refills
// through RefillPreKeys, up to Config.PreKeys of each kind, and a kind
// that is not low is left alone.
func TestRefillPreKeys(t *testing.T) {
	r := newRelay(t)
	alice, bob := register(t, r), register(t, r)
	ctx := ctxT(t)
	for range 3 {
		err := alice.conn(ctx, func(c *clientConn) error { _, err := c.FetchKeys(ctx, bob.AccountID()); return err })
		if err != nil {
			t.Fatal(err)
		}
	}
	wantCounts(t, bob, 97, 97)
	// The KEM kind is said not to be low: only X25519 ones are made.
	if err := bob.RefillPreKeys(ctx, 97, 100); err != nil {
		t.Fatal(err)
	}
	wantCounts(t, bob, 100, 97)
	if err := bob.RefillPreKeys(ctx, 100, 97); err != nil {
		t.Fatal(err)
	}
	wantCounts(t, bob, 100, 100)
}

// TestLinkUploadsKEMPreKeys: a linked device, too, starts with its
// one-time KEM prekeys at the relay.
func TestLinkUploadsKEMPreKeys(t *testing.T) {
	r := newRelay(t)
	laptop := link(t, r, register(t, r))
	wantCounts(t, laptop, 100, 100)
}

// TestFailFast: with Config.FailFast, a call on a relay that is gone
// fails at once with an *UnreachableError, well before its context ends.
func TestFailFast(t *testing.T) {
	r := newRelay(t)
	bob := register(t, r)
	cfg := r.cfg
	cfg.FailFast, cfg.SendOnly = true, true
	m, err := Open(bob.dir, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Devices(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	m.Close()
	if m, err = Open(bob.dir, &cfg); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	_, err = m.Devices(ctx)
	var ue *UnreachableError
	if !errors.As(err, &ue) || ctx.Err() != nil {
		t.Fatalf("devices with the relay gone: %v (context: %v), want an UnreachableError at once", err, ctx.Err())
	}
}

// wantCounts fails unless the relay holds n one-time X25519 prekeys and
// kem one-time KEM prekeys (and a last-resort one) for d.
func wantCounts(t *testing.T, d *device, n, kem int) {
	t.Helper()
	counts, err := d.PreKeyCounts(ctxT(t))
	if err != nil || counts.PreKeys != n || counts.KemPreKeys != kem || !counts.KemLastResort {
		t.Fatalf("relay holds %+v (%v), want %d one-time prekeys, %d one-time KEM prekeys and a last-resort one", counts, err, n, kem)
	}
}

// waitLog waits until the messenger logs want.
func waitLog(t *testing.T, logs signalHandler, deadline <-chan time.Time, want string) {
	t.Helper()
	for {
		select {
		case msg := <-logs.msgs:
			if msg == want {
				return
			}
		case <-deadline:
			t.Fatalf("no log %q", want)
		}
	}
}
