package messenger

import (
	"context"
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
	for range 2 { // 11 - 2 = 9 left: under the threshold
		err := alice.conn(ctx, func(c *clientConn) error { _, err := c.FetchKeys(ctx, bob.AccountID()); return err })
		if err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.After(patience)
	for done := false; !done; {
		select {
		case msg := <-logs.msgs:
			done = msg == "uploaded new one-time prekeys"
		case <-deadline:
			t.Fatal("no prekeys uploaded")
		}
	}
	var n int
	err = bob.conn(ctx, func(c *clientConn) error { var err error; n, err = c.PreKeyStatus(ctx); return err })
	if err != nil || n != 11 {
		t.Fatalf("relay holds %d prekeys (%v), want 11", n, err)
	}
}
