package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the NATS client's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestNATSConnectErrorHidesPassword starts a relay with -store naming a
// NATS server that is not there, with a password (and a token) in the
// URL: it fails, and neither its error nor its log holds the secret.
func TestNATSConnectErrorHidesPassword(t *testing.T) {
	port := freePort(t) // closed again: nothing listens there
	key := filepath.Join(newSecrets(t), "cluster.key")
	for _, store := range []string{
		fmt.Sprintf("nats://user:s3cret@127.0.0.1:%d", port),
		fmt.Sprintf("nats://127.0.0.1:%d,nats://s3cret@127.0.0.1:%d", port, port),
		fmt.Sprintf("http://user:s3cret@127.0.0.1:%d", port), // refused as not NATS
	} {
		var f serveFlags
		fs := serveFlagSet(&f)
		if err := fs.Parse([]string{"-data", t.TempDir(), "-listen", "127.0.0.1:0", "-media", "off", "-store", store, "-cluster-key-file", key}); err != nil {
			t.Fatal(err)
		}
		var buf syncBuffer
		log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := runRelay(ctx, &f, log)
		cancel()
		if err == nil {
			t.Fatalf("-store %s: the relay started", store)
		}
		shown := err.Error()
		if strings.Contains(shown, "s3cret") || strings.Contains(buf.String(), "s3cret") {
			t.Errorf("-store %s: the secret is shown:\nerror: %s\nlog: %s", store, shown, buf.String())
		}
		if !strings.Contains(shown, "127.0.0.1") {
			t.Errorf("-store %s: the error does not say which server: %s", store, shown)
		}
	}
}

func TestRedactURLs(t *testing.T) {
	for in, want := range map[string]string{
		"nats://u:p@h:4222":                     "nats://REDACTED@h:4222",
		"nats://tok@h:1,tls://u:p@ss@h2:2":      "nats://REDACTED@h:1,tls://REDACTED@h2:2",
		`connect "nats://u:pw@h" failed: x@y`:   `connect "nats://REDACTED@h" failed: x@y`,
		"nats://h:4222/path@not-userinfo":       "nats://h:4222/path@not-userinfo",
		"no url here, user@example.org says hi": "no url here, user@example.org says hi",
	} {
		if got := redactURLs(in); got != want {
			t.Errorf("redactURLs(%q) = %q, want %q", in, got, want)
		}
	}
}
