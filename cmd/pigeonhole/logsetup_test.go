package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestJSONLogs: -log-format json writes one JSON object a line, with the
// level and message slog gives; a bad format or level is refused.
func TestJSONLogs(t *testing.T) {
	var b bytes.Buffer
	log, err := newLogger(&b, "info", "json")
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("hidden")
	log.Info("relay listening", "addr", "127.0.0.1:4433")
	var rec map[string]any
	if err := json.Unmarshal(b.Bytes(), &rec); err != nil || rec["msg"] != "relay listening" || rec["level"] != "INFO" || rec["addr"] != "127.0.0.1:4433" {
		t.Fatalf("%q: %v %v", b.String(), rec, err)
	}
	for _, bad := range [][2]string{{"info", "yaml"}, {"loud", "text"}} {
		if _, err := newLogger(&b, bad[0], bad[1]); err == nil {
			t.Errorf("level %q format %q accepted", bad[0], bad[1])
		}
	}
}

// TestUnknownEnvWarns: a misspelt PIGEONHOLE_ variable is named, with the
// setting it was probably meant to be; real settings and the variables
// that are not settings pass without a word.
func TestUnknownEnvWarns(t *testing.T) {
	t.Setenv("PIGEONHOLE_MAX_WINDOWS", "5")
	t.Setenv("PIGEONHOLE_LISTEN", ":4433")
	t.Setenv("PIGEONHOLE_CONFIG", "x.conf")
	t.Setenv("PIGEONHOLE_NONSENSE_AT_ALL", "1")
	ws := unknownEnv(serveFlagSet(&serveFlags{}))
	if len(ws) != 2 || !strings.Contains(ws[0], "PIGEONHOLE_MAX_WINDOWS is set but names no setting: ignored (did you mean PIGEONHOLE_MAX_WINDOW?)") ||
		!strings.HasPrefix(ws[1], "PIGEONHOLE_NONSENSE_AT_ALL is set") || strings.Contains(ws[1], "did you mean") {
		t.Fatalf("%q", ws)
	}
}
