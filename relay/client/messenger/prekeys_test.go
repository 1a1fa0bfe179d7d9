package messenger

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/pigeonhole/pigeonhole/relay/client"
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

// TestPreKeyRefill: when key fetches leave Bob's device with fewer than
// the relay's threshold (10), the relay says so and Run uploads new
// one-time prekeys up to Config.PreKeys.
func TestPreKeyRefill(t *testing.T) {
	r := newRelay(t)
	alice := register(t, r)
	cfg := r.cfg
	cfg.PreKeys = 11
	ctx := ctxT(t)
	dir := filepath.Join(t.TempDir(), "bob")
	if m, err := Register(ctx, dir, &cfg); err != nil {
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
	bob.run(t)
	// It registered with a last-resort KEM prekey only, so its first
	// session is told its one-time KEM prekeys are low, and uploads them.
	deadline := time.After(patience)
	waitLog(t, logs, deadline, "uploaded new one-time KEM prekeys")
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
	var n int
	err = bob.conn(ctx, func(c *clientConn) error { var err error; n, err = c.PreKeyStatus(ctx); return err })
	if err != nil || n != 11 {
		t.Fatalf("relay holds %d prekeys (%v), want 11", n, err)
	}
	var counts *client.PreKeyCounts
	err = bob.conn(ctx, func(c *clientConn) error { var err error; counts, err = c.PreKeyCounts(ctx); return err })
	if err != nil || counts.KemPreKeys != 11 || !counts.KemLastResort {
		t.Fatalf("relay holds %+v KEM prekeys (%v), want 11 one-time and a last-resort one", counts, err)
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
