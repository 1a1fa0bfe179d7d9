package relay_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/pigeonhole/pigeonhole/queue"
	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/spec"
)

// lockedBuffer is a bytes.Buffer safe for the relay's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestLogsCarryNoSecrets runs registrations, a refused session, sends and
// deliveries with debug logging on, and checks that no log line holds a
// full account id, a key or a ciphertext.
func TestLogsCarryNoSecrets(t *testing.T) {
	var buf lockedBuffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r := startRelayLogged(t, testConfig(), queue.Config{}, t.TempDir(), "127.0.0.1:0", log)
	alice, bob := r.register(t, 5), r.register(t, 5)
	ac := r.session(t, alice, 0)
	if _, err := ac.FetchKeys(ctxT(t), bob.AccountID); err != nil {
		t.Fatal(err)
	}
	secret := "the-ciphertext-bytes-must-not-be-logged"
	if _, err := sendText(t, ac, bob, []uint32{1}, secret); err != nil {
		t.Fatal(err)
	}
	bc := r.session(t, bob, 8)
	env := nextEnvelope(t, bc)
	if err := bc.Ack(env.Seq); err != nil {
		t.Fatal(err)
	}
	// A refused session (wrong key) is logged; its details must not be.
	bad := *bob.creds()
	bad.AuthKey = alice.auth
	c := r.dial(t)
	if _, err := c.Authenticate(ctxT(t), &bad, 1); client.ErrorCode(err) != uint32(spec.CodeBadSignature) {
		t.Fatalf("wrong key: %v", err)
	}
	r.stop(t)

	logs := buf.String()
	if !strings.Contains(logs, "account registered") || !strings.Contains(logs, "session refused") {
		t.Fatalf("expected log lines missing:\n%s", logs)
	}
	// At debug level, an operator sees the refused client's address.
	if !strings.Contains(logs, "ip=127.0.0.1") {
		t.Errorf("the debug log does not show the refused client's address:\n%s", logs)
	}
	for what, s := range map[string]string{
		"alice's account id":     hex.EncodeToString(alice.AccountID),
		"bob's account id":       hex.EncodeToString(bob.AccountID),
		"alice's auth key":       hex.EncodeToString(alice.auth.Public().(ed25519.PublicKey)),
		"bob's identity key":     hex.EncodeToString(bob.identity.PublicKey().Serialize()),
		"the ciphertext":         secret,
		"the ciphertext, in hex": hex.EncodeToString([]byte(secret))[:24],
	} {
		if strings.Contains(logs, s) {
			t.Errorf("the log contains %s", what)
		}
	}
}

// ipv4 matches a dotted IPv4 address anywhere in a log.
var ipv4 = regexp.MustCompile(`\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b`)

// hexRun matches a run of at least 4 hex digits.
var hexRun = regexp.MustCompile(`(?i)[0-9a-f]{4,}`)

// TestInfoLogsNameNoAddressOrAccount runs a relay at the default (info)
// level through register, auth (and a refused auth), send, receive, ack,
// link and revoke over real QUIC, and checks that its log holds no client
// address and no account id, nor any piece of one of 4 hex digits or
// more.
func TestInfoLogsNameNoAddressOrAccount(t *testing.T) {
	var buf lockedBuffer
	// The default level; no time, so that the log's own digits cannot
	// look like a piece of an account id.
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		Level: slog.LevelInfo,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	r := startRelayLogged(t, testConfig(), queue.Config{}, t.TempDir(), "127.0.0.1:0", log)
	alice, bob := r.register(t, 5), r.register(t, 5)
	ac := r.session(t, alice, 0)
	bc := r.session(t, bob, 8)
	if _, err := sendText(t, ac, bob, []uint32{1}, "hello"); err != nil {
		t.Fatal(err)
	}
	env := nextEnvelope(t, bc)
	if err := bc.Ack(env.Seq); err != nil {
		t.Fatal(err)
	}
	if err := bc.Finish(ctxT(t)); err != nil { // the ack is durable
		t.Fatal(err)
	}
	a2 := r.link(t, alice, ac)
	if err := ac.RevokeDevice(ctxT(t), a2.DeviceID); err != nil {
		t.Fatal(err)
	}
	// A refused session, from an address the test knows.
	bad := *bob.creds()
	bad.AuthKey = alice.auth
	c := r.dial(t)
	clientAddr := c.LocalAddr()
	if _, err := c.Authenticate(ctxT(t), &bad, 1); client.ErrorCode(err) != uint32(spec.CodeBadSignature) {
		t.Fatalf("wrong key: %v", err)
	}
	r.stop(t)

	logs := buf.String()
	for _, line := range []string{"account registered", "device linked", "device revoked", "session refused"} {
		if !strings.Contains(logs, line) {
			t.Fatalf("the log has no %q line:\n%s", line, logs)
		}
	}
	host, _, err := net.SplitHostPort(clientAddr)
	if err != nil {
		t.Fatalf("client address %q: %v", clientAddr, err)
	}
	if strings.Contains(logs, host) || ipv4.MatchString(logs) || strings.Contains(logs, "::1") {
		t.Errorf("the log at info level holds an IP address (client %s):\n%s", clientAddr, logs)
	}
	for who, id := range map[string][]byte{"alice": alice.AccountID, "bob": bob.AccountID} {
		h := hex.EncodeToString(id)
		for _, run := range hexRun.FindAllString(logs, -1) {
			run = strings.ToLower(run)
			for i := 0; i+4 <= len(h); i++ {
				if strings.Contains(run, h[i:i+4]) {
					t.Errorf("the log at info level holds %q, a piece of %s's account id %s:\n%s", run, who, h, logs)
				}
			}
		}
	}
}
