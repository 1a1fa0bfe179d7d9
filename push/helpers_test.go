package push

import (
	"bytes"
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pigeonhole/pigeonhole/push/pushtest"
)

type silentPebble struct{}

func (silentPebble) Infof(string, ...any)         {}
func (silentPebble) Errorf(string, ...any)        {}
func (silentPebble) Fatalf(f string, args ...any) { panic(f) }

func openDB(t testing.TB) *pebble.DB {
	t.Helper()
	db, err := pebble.Open(t.TempDir(), &pebble.Options{FormatMajorVersion: pebble.FormatNewest, Logger: silentPebble{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newSealKey(t testing.TB) []byte {
	k := make([]byte, SealKeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func newStore(t testing.TB) *Store {
	t.Helper()
	s, err := NewStore(openDB(t), newSealKey(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func apnsConfig(a *pushtest.APNs) *APNsConfig {
	return &APNsConfig{AuthKey: a.AuthKey, KeyID: a.KeyID, TeamID: a.TeamID, Host: a.URL, HTTPClient: a.Client}
}

func fcmConfig(f *pushtest.FCM) *FCMConfig {
	return &FCMConfig{Credentials: f.Credentials, Endpoint: f.URL + "/v1", HTTPClient: f.Client}
}

// testClock is the fixed time the services in these tests run at, so the
// APNs expiration and FCM ttl are exact.
var testClock = time.Unix(1_800_000_000, 0)

// harness is a running push service with an event for every attempt.
type harness struct {
	*Service
	store    *Store
	reg      *prometheus.Registry
	attempts chan attemptEvent
}

type attemptEvent struct {
	dev Device
	r   result
}

// start runs a service with cfg (fast retries unless cfg says otherwise)
// until the test ends.
func start(t testing.TB, cfg Config) *harness {
	t.Helper()
	if cfg.Backoff == 0 {
		cfg.Backoff = time.Millisecond
	}
	h := &harness{store: newStore(t), reg: prometheus.NewRegistry(), attempts: make(chan attemptEvent, 1000)}
	svc, err := New(context.Background(), cfg, h.store, nil, h.reg)
	if err != nil {
		t.Fatal(err)
	}
	svc.now = func() time.Time { return testClock }
	svc.attempted = func(d Device, r result) { h.attempts <- attemptEvent{d, r} }
	h.Service = svc
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { svc.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return h
}

// attempt waits for the next finished attempt.
func (h *harness) attempt(t testing.TB) attemptEvent {
	t.Helper()
	select {
	case ev := <-h.attempts:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no push attempt finished within 10s")
		return attemptEvent{}
	}
}

// noAttempt checks that no attempt is pending: it notifies a control
// device and sees that the control's attempt is the next one.
func (h *harness) noAttemptBefore(t testing.TB, control Device) {
	t.Helper()
	h.Notify(control)
	if ev := h.attempt(t); ev.dev != control {
		t.Fatalf("an unexpected push attempt for %v came before the control's", ev.dev)
	}
}

func device(n byte) Device {
	var d Device
	d.Account[0] = n
	d.ID = 1
	return d
}

func apnsTok(n byte) Token {
	return APNsToken(bytes.Repeat([]byte{n}, 32), "org.pigeonhole.app", false)
}

func mustSet(t testing.TB, h *harness, d Device, tok Token) {
	t.Helper()
	if err := h.SetToken(context.Background(), d, tok); err != nil {
		t.Fatal(err)
	}
}
