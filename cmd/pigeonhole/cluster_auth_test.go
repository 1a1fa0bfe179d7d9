package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/pigeonhole/pigeonhole/relay/client"
)

// runRelayErr runs a relay in this process with args and returns the
// error it stops with (it must fail to start) and its log.
func runRelayErr(t *testing.T, args ...string) (error, string) {
	t.Helper()
	var f serveFlags
	fs := serveFlagSet(&f)
	if err := fs.Parse(append([]string{"-data", t.TempDir(), "-listen", "127.0.0.1:0", "-media", "off"}, args...)); err != nil {
		t.Fatal(err)
	}
	var buf syncBuffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	err := runRelay(ctx, &f, log)
	if err == nil {
		t.Fatalf("a relay with %q started", args)
	}
	return redactErr(err), buf.String()
}

// openNATS runs one JetStream server that lets anyone in.
func openNATS(t *testing.T) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(patience) {
		t.Fatal("nats server not ready")
	}
	return ns
}

// TestClusterRefusesInsecureNATS: a relay given only a NATS URL refuses
// to start and says which flags to add; without a cluster key it says how
// to make one; with -nats-insecure (and the key) it starts and serves.
func TestClusterRefusesInsecureNATS(t *testing.T) {
	ns := openNATS(t)
	key := filepath.Join(newSecrets(t), "cluster.key")
	err, _ := runRelayErr(t, "-store", ns.ClientURL(), "-cluster-key-file", key)
	for _, want := range []string{"needs NATS credentials", "-nats-creds", "-nats-nkey", "-nats-user", "-nats-password-file", "-nats-insecure"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("no credentials: %q does not say %q", err, want)
		}
	}
	err, _ = runRelayErr(t, "-store", ns.ClientURL(), "-nats-insecure")
	if !strings.Contains(err.Error(), "head -c 32 /dev/urandom > cluster.key") || !strings.Contains(err.Error(), "-cluster-key-file") {
		t.Errorf("no cluster key: %q does not say how to make one", err)
	}
	short := filepath.Join(t.TempDir(), "short.key")
	if err := os.WriteFile(short, []byte("0123"), 0o600); err != nil {
		t.Fatal(err)
	}
	err, _ = runRelayErr(t, "-store", ns.ClientURL(), "-nats-insecure", "-cluster-key-file", short)
	if !strings.Contains(err.Error(), "want 32 random bytes") {
		t.Errorf("a short cluster key: %q", err)
	}
	p := startRelayProc(t, t.TempDir(), "-store", ns.ClientURL(), "-nats-replicas", "1", "-media", "off", "-nats-insecure", "-cluster-key-file", key)
	sessionProc(t, p.opts, registerProc(t, p.opts), 0)
}

// TestClusterPasswordFile: against a NATS server that requires a user, a
// relay with -nats-user and -nats-password-file connects and serves; with
// a wrong password it fails, says why, and shows the password nowhere.
func TestClusterPasswordFile(t *testing.T) {
	cl := startNATS(t)
	p := startRelayProc(t, t.TempDir(), append(cl.storeFlags(), "-nats-replicas", "1", "-media", "off")...)
	sessionProc(t, p.opts, registerProc(t, p.opts), 0)

	wrong := filepath.Join(t.TempDir(), "wrong-password")
	const wrongPassword = "not-the-Passw0rd"
	if err := os.WriteFile(wrong, []byte(wrongPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err, log := runRelayErr(t, "-store", cl.urls(), "-nats-user", testNATSUser, "-nats-password-file", wrong,
		"-cluster-key-file", filepath.Join(cl.secrets, "cluster.key"))
	msg := err.Error()
	if !strings.Contains(strings.ToLower(msg), "authorization violation") || !strings.Contains(msg, "-nats-password-file") {
		t.Errorf("wrong password: %q does not say what is wrong", msg)
	}
	for _, secret := range []string{wrongPassword, testNATSPassword} {
		if strings.Contains(msg, secret) || strings.Contains(log, secret) {
			t.Errorf("a password is shown:\nerror: %s\nlog: %s", msg, log)
		}
	}
	err, _ = runRelayErr(t, "-store", cl.urls(), "-nats-user", testNATSUser, "-cluster-key-file", filepath.Join(cl.secrets, "cluster.key"))
	if !strings.Contains(err.Error(), "-nats-user and -nats-password-file go together") {
		t.Errorf("a user without a password file: %q", err)
	}
}

// TestClusterNKey: a relay logs in with an NKey seed file.
func TestClusterNKey(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
		Nkeys: []*server.NkeyUser{{Nkey: pub}}})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(patience) {
		t.Fatal("nats server not ready")
	}
	dir := newSecrets(t)
	seedFile := filepath.Join(dir, "relay.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "cluster.key")
	// Without the seed the server refuses (it wants a user).
	if err, _ := runRelayErr(t, "-store", ns.ClientURL(), "-nats-insecure", "-cluster-key-file", key); !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
		t.Errorf("no seed: %v", err)
	}
	p := startRelayProc(t, t.TempDir(), "-store", ns.ClientURL(), "-nats-nkey", seedFile, "-cluster-key-file", key, "-nats-replicas", "1", "-media", "off")
	sessionProc(t, p.opts, registerProc(t, p.opts), 0)
}

// TestClusterForgedAuthKey: an attacker with direct access to NATS (the
// relays' own credentials, but not the cluster key) rewrites the victim
// device's auth key in its account record to a key of the attacker's,
// then logs in as the victim over QUIC: refused, and the relay counts
// the rejected record. With the genuine record back the victim logs in.
func TestClusterForgedAuthKey(t *testing.T) {
	cl := startNATS(t)
	ready := filepath.Join(t.TempDir(), "ready.json")
	p := startRelayProc(t, t.TempDir(), append(cl.storeFlags(), "-nats-replicas", "1", "-media", "off",
		"-metrics", "127.0.0.1:0", "-ready-file", ready)...)
	victim := registerProc(t, p.opts)

	js, err := jetstream.New(cl.connect(t))
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(testCtx(t), "PIGEONHOLE_KEYS")
	if err != nil {
		t.Fatal(err)
	}
	recKey := "a." + hex.EncodeToString(victim.AccountID)
	e, err := kv.Get(testCtx(t), recKey)
	if err != nil {
		t.Fatal(err)
	}
	genuine := e.Value()
	// The record is JSON with a 32-byte tag after it; the attacker edits
	// the JSON and keeps (or drops) the tag.
	body, tag := genuine[:len(genuine)-32], genuine[len(genuine)-32:]
	var rec map[string]any
	if err := json.Unmarshal(body, &rec); err != nil {
		t.Fatalf("the account record is not JSON and a tag: %v", err)
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	rec["devices"].(map[string]any)["1"].(map[string]any)["AuthKey"] = base64.StdEncoding.EncodeToString(pub)
	forged, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	attacker := &client.Credentials{AccountID: victim.AccountID, DeviceID: 1, AuthKey: priv}
	for i, v := range [][]byte{append(forged, tag...), forged} {
		if _, err := kv.Put(testCtx(t), recKey, v); err != nil {
			t.Fatal(err)
		}
		c, err := client.Dial(testCtx(t), &p.opts)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Authenticate(testCtx(t), attacker, 0); err == nil {
			t.Errorf("forgery %d: the attacker logged in as the victim", i)
		} else {
			t.Logf("forgery %d: login refused: %v", i, err)
		}
		c.Close()
	}
	b, err := os.ReadFile(ready)
	if err != nil {
		t.Fatal(err)
	}
	var info struct{ Metrics string }
	if err := json.Unmarshal(b, &info); err != nil {
		t.Fatal(err)
	}
	_, metrics := get(t, "http://"+info.Metrics+"/metrics")
	m := regexp.MustCompile(`(?m)^pigeonhole_cluster_records_rejected_total\{kind="account"\} (\d+)$`).FindStringSubmatch(metrics)
	if m == nil {
		t.Fatal("no pigeonhole_cluster_records_rejected_total{kind=\"account\"} in /metrics")
	}
	if n, _ := strconv.Atoi(m[1]); n < 2 {
		t.Errorf("rejected account records: %d, want at least 2", n)
	}
	if _, err := kv.Put(testCtx(t), recKey, genuine); err != nil {
		t.Fatal(err)
	}
	sessionProc(t, p.opts, victim, 0)
}
