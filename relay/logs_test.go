package relay_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"log/slog"
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
