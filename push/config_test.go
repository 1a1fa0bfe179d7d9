package push

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pigeonhole/pigeonhole/push/pushtest"
)

// TestBrokenCredentialsFailAtStart: every broken credential is an error
// from New, with a message naming the problem, not a panic at the first
// push.
func TestBrokenCredentialsFailAtStart(t *testing.T) {
	a := pushtest.NewAPNs(t)
	f := pushtest.NewFCM(t)
	withSA := func(edit func(map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(f.Credentials, &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		b, _ := json.Marshal(m)
		return b
	}
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"p8 not PEM", Config{APNs: &APNsConfig{AuthKey: []byte("not a key"), KeyID: a.KeyID, TeamID: a.TeamID}}, ".p8"},
		{"p8 RSA", Config{APNs: &APNsConfig{AuthKey: rsaPEM(t, f), KeyID: a.KeyID, TeamID: a.TeamID}}, ".p8"},
		{"key id", Config{APNs: &APNsConfig{AuthKey: a.AuthKey, KeyID: "short", TeamID: a.TeamID}}, "key id"},
		{"team id", Config{APNs: &APNsConfig{AuthKey: a.AuthKey, KeyID: a.KeyID, TeamID: "lower-case"}}, "team id"},
		{"topic", Config{APNs: &APNsConfig{AuthKey: a.AuthKey, KeyID: a.KeyID, TeamID: a.TeamID, Topics: []string{"a b"}}}, "topic"},
		{"fcm not JSON", Config{FCM: &FCMConfig{Credentials: []byte("{")}}, "not JSON"},
		{"fcm wrong type", Config{FCM: &FCMConfig{Credentials: withSA(func(m map[string]any) { m["type"] = "authorized_user" })}}, "service account"},
		{"fcm no project", Config{FCM: &FCMConfig{Credentials: withSA(func(m map[string]any) { delete(m, "project_id") })}}, "project_id"},
		{"fcm bad key", Config{FCM: &FCMConfig{Credentials: withSA(func(m map[string]any) {
			m["private_key"] = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
		})}}, "private_key"},
	}
	for _, c := range cases {
		_, err := New(context.Background(), c.cfg, newStore(t), nil, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want one mentioning %q", c.name, err, c.want)
		}
	}
}

// rsaPEM returns the FCM service account's RSA key, a PEM that is not an
// APNs key.
func rsaPEM(t *testing.T, f *pushtest.FCM) []byte {
	var sa serviceAccount
	if err := json.Unmarshal(f.Credentials, &sa); err != nil {
		t.Fatal(err)
	}
	return []byte(sa.PrivateKey)
}

func TestSetTokenRefusals(t *testing.T) {
	a := pushtest.NewAPNs(t)
	cfg := apnsConfig(a)
	cfg.Topics = []string{"org.pigeonhole.app"}
	h := start(t, Config{APNs: cfg})
	ctx := context.Background()
	if err := h.SetToken(ctx, device(1), FCMToken("abc")); !errors.Is(err, ErrProviderOff) {
		t.Errorf("FCM token on an APNs-only relay: %v", err)
	}
	if err := h.SetToken(ctx, device(1), APNsToken([]byte{1}, "com.other.app", false)); !errors.Is(err, ErrProviderOff) {
		t.Errorf("topic outside the list: %v", err)
	}
	if err := h.SetToken(ctx, device(1), APNsToken(nil, "org.pigeonhole.app", false)); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("empty token: %v", err)
	}
	if err := h.SetToken(ctx, device(1), apnsTok(1)); err != nil {
		t.Errorf("good token: %v", err)
	}
	if err := h.DeleteToken(ctx, device(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.Get(ctx, device(1)); !errors.Is(err, ErrNoToken) {
		t.Errorf("after DeleteToken: %v", err)
	}
}

// TestHungProviderNeverBlocksNotify: a provider that accepts connections
// and never answers ties up the workers; Notify still returns at once,
// drops what the queue cannot hold and counts it.
func TestHungProviderNeverBlocksNotify(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	})
	a := pushtest.NewAPNs(t) // for a valid key only
	cfg := apnsConfig(a)
	cfg.Host = "https://" + ln.Addr().String()
	h := start(t, Config{APNs: cfg, Workers: 1, QueueSize: 4, MaxAttempts: 1, AttemptTimeout: 300 * time.Millisecond})
	const n = 40
	for i := range n {
		mustSet(t, h, device(byte(i)), apnsTok(byte(i)))
	}
	var slowest time.Duration
	for i := range n {
		start := time.Now()
		h.Notify(device(byte(i)))
		slowest = max(slowest, time.Since(start))
	}
	if slowest > 100*time.Millisecond {
		t.Errorf("the slowest Notify took %v with the provider hung", slowest)
	}
	dropped := testutil.ToFloat64(h.m.dropped.WithLabelValues("apns"))
	// At most the queue plus the one in the worker's hands got through.
	if dropped < n-5 {
		t.Errorf("dropped = %v of %d with a queue of 4", dropped, n)
	}
	ev := h.attempt(t)
	if ev.r.outcome != retry || ev.r.reason != "network" {
		t.Errorf("attempt on a hung provider: %+v", ev.r)
	}
	t.Logf("slowest Notify %v; dropped %v of %d", slowest, dropped, n)
}

// TestLogsNeverHoldATokenInFull runs the dead-token path with a JSON
// logger and checks the output.
func TestLogsNeverHoldATokenInFull(t *testing.T) {
	f := pushtest.NewFCM(t)
	var buf bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewJSONHandler(&lockedWriter{w: &buf, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	store := newStore(t)
	svc, err := New(context.Background(), Config{FCM: fcmConfig(f)}, store, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan result, 1)
	svc.attempted = func(_ Device, r result) { done <- r }
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { svc.Run(ctx); close(stopped) }()
	defer func() { cancel(); <-stopped }()
	tok := FCMToken("tokenSECRETtail0123456789")
	if err := svc.SetToken(ctx, device(1), tok); err != nil {
		t.Fatal(err)
	}
	f.Answer(tok.Value, 404, "UNREGISTERED")
	svc.Notify(device(1))
	<-done
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	if !strings.Contains(out, "token removed") {
		t.Fatalf("no log line for the removed token: %s", out)
	}
	if strings.Contains(out, "SECRET") {
		t.Fatalf("the log holds the token: %s", out)
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
