package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pigeonhole/pigeonhole/push/pushtest"
)

// startWith runs the relay's start-up with args and an already cancelled
// context: it returns after start-up (and an immediate clean shutdown),
// with what it logged.
func startWith(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var f serveFlags
	fs := serveFlagSet(&f)
	args = append([]string{"-data", t.TempDir(), "-listen", "127.0.0.1:0"}, args...)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := runRelay(ctx, &f, log)
	return buf.String(), err
}

func TestPushOffIsSaidOnce(t *testing.T) {
	out, err := startWith(t)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out, "push is off"); n != 1 {
		t.Fatalf("%q said %d times in:\n%s", "push is off", n, out)
	}
}

func TestPushOnWithValidCredentials(t *testing.T) {
	a := pushtest.NewAPNs(t)
	dir := t.TempDir()
	key := filepath.Join(dir, "AuthKey.p8")
	if err := os.WriteFile(key, a.AuthKey, 0o600); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	out, err := startWith(t, "-data", data, "-apns-key", key, "-apns-key-id", a.KeyID, "-apns-team-id", a.TeamID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "push is on") || !strings.Contains(out, "apns=true") || !strings.Contains(out, "fcm=false") {
		t.Fatalf("log:\n%s", out)
	}
	st, err := os.Stat(filepath.Join(data, pushTokenKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != 32 || st.Mode().Perm() != 0o600 {
		t.Fatalf("seal key file: %d bytes, mode %v", st.Size(), st.Mode().Perm())
	}
}

// TestBrokenPushCredentialsStopTheStart: a broken credential file is a
// clear error at start, not a crash at the first push.
func TestBrokenPushCredentialsStopTheStart(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	junk := write("junk.p8", "not a key")
	sa := write("sa.json", `{"type":"service_account","project_id":"p","private_key_id":"k","client_email":"e@p","private_key":"nope"}`)
	short := write("short.key", "0123")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"-apns-key", filepath.Join(dir, "missing.p8"), "-apns-key-id", "ABCDEFGHIJ", "-apns-team-id", "ABCDEFGHIJ"}, "read APNs key"},
		{[]string{"-apns-key", junk, "-apns-key-id", "ABCDEFGHIJ", "-apns-team-id", "ABCDEFGHIJ"}, "APNs auth key (.p8)"},
		{[]string{"-apns-key-id", "ABCDEFGHIJ"}, "need -apns-key"},
		{[]string{"-fcm-credentials", sa}, "private_key is not PEM"},
		{[]string{"-fcm-credentials", junk}, "not JSON"},
		{[]string{"-fcm-credentials", sa, "-push-ca", junk}, "no PEM certificate"},
		{[]string{"-fcm-credentials", sa, "-push-token-key", short}, "want 32 random bytes"},
		{[]string{"-media", "s3", "-max-blob-bytes", "6000000000"}, "the largest file the media format carries"},
		{[]string{"-media", "tape"}, "must be dir, s3 or off"},
	}
	for _, c := range cases {
		_, err := startWith(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err %v, want one containing %q", c.args, err, c.want)
		}
	}
}
