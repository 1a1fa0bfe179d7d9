package main

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// get fetches url and returns the status code and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: patience}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestHealthEndpoints: a relay process started with -metrics answers
// /healthz and /readyz with 200 once it listens (the ready file is
// written after both are up).
func TestHealthEndpoints(t *testing.T) {
	ready := filepath.Join(t.TempDir(), "ready.json")
	startRelayProc(t, t.TempDir(), "-metrics", "127.0.0.1:0", "-ready-file", ready)
	b, err := os.ReadFile(ready)
	if err != nil {
		t.Fatal(err)
	}
	var info struct{ Metrics string }
	if err := json.Unmarshal(b, &info); err != nil || info.Metrics == "" {
		t.Fatalf("ready file %s: %v", b, err)
	}
	for path, want := range map[string]string{"/healthz": "ok\n", "/readyz": "ready\n"} {
		if code, body := get(t, "http://"+info.Metrics+path); code != 200 || body != want {
			t.Errorf("GET %s: %d %q, want 200 %q", path, code, body, want)
		}
	}
}

// TestReadyzReasons: /readyz answers 503 with one reason a line while the
// listener is not up (starting, or draining after SIGTERM) or a dependency
// check fails, and 200 only when all is well; /healthz stays 200.
func TestReadyzReasons(t *testing.T) {
	hl := &health{}
	var natsDown error = errors.New("connection reconnecting")
	hl.add("nats", func() error { return natsDown })
	mux := http.NewServeMux()
	hl.register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	code, body := get(t, srv.URL+"/readyz")
	if code != 503 || !strings.Contains(body, "listener: not serving") || !strings.Contains(body, "nats: connection reconnecting") {
		t.Fatalf("starting, NATS down: %d %q", code, body)
	}
	hl.up.Store(true)
	if code, body = get(t, srv.URL+"/readyz"); code != 503 || strings.Contains(body, "listener") {
		t.Fatalf("listening, NATS down: %d %q", code, body)
	}
	natsDown = nil
	if code, body = get(t, srv.URL+"/readyz"); code != 200 || body != "ready\n" {
		t.Fatalf("all up: %d %q", code, body)
	}
	hl.up.Store(false) // shutdown began
	if code, _ = get(t, srv.URL+"/readyz"); code != 503 {
		t.Fatalf("draining: %d", code)
	}
	if code, _ = get(t, srv.URL+"/healthz"); code != 200 {
		t.Fatalf("healthz while draining: %d", code)
	}
}
