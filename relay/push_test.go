package relay_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pigeonhole/pigeonhole/push"
	"github.com/pigeonhole/pigeonhole/push/pushtest"
	"github.com/pigeonhole/pigeonhole/queue"
	"github.com/pigeonhole/pigeonhole/relay"
	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/spec"
)

const pushTopic = "org.pigeonhole.test"

// startPushRelay starts a relay that pushes through a local APNs
// endpoint, with the given coalescing window.
func startPushRelay(t testing.TB, window time.Duration) (*testRelay, *pushtest.APNs) {
	t.Helper()
	a := pushtest.NewAPNs(t)
	var svc *push.Service
	r := startRelaySetup(t, testConfig(), queue.Config{}, t.TempDir(), "127.0.0.1:0", slog.New(slog.DiscardHandler),
		func(srv *relay.Server, db *pebble.DB, reg *prometheus.Registry) {
			key := make([]byte, push.SealKeySize)
			rand.Read(key)
			store, err := push.NewStore(db, key)
			if err != nil {
				t.Fatal(err)
			}
			svc, err = push.New(context.Background(), push.Config{
				Window: window,
				APNs:   &push.APNsConfig{AuthKey: a.AuthKey, KeyID: a.KeyID, TeamID: a.TeamID, Host: a.URL, HTTPClient: a.Client},
			}, store, nil, reg)
			if err != nil {
				t.Fatal(err)
			}
			srv.UsePush(svc)
		})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { svc.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return r, a
}

// pushToken gives d an APNs token (on a send-only connection, which does
// not count as connected) and returns it in hex.
func (r *testRelay) pushToken(t testing.TB, d *device) string {
	t.Helper()
	tok := make([]byte, 32)
	rand.Read(tok)
	c := r.session(t, d, 0)
	if err := c.SetAPNsToken(ctxT(t), tok, pushTopic, false); err != nil {
		t.Fatalf("set push token: %v", err)
	}
	c.Close()
	return hex.EncodeToString(tok)
}

// counter returns a counter's value summed over its labels, 0 if it has
// never been touched.
func (r *testRelay) counter(t *testing.T, name string) float64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// TestPushFullPath: a device registers a token and goes away; mail for it
// sends exactly one push inside the window; a connected device gets none;
// the device reconnects and drains its queue; after it leaves, the next
// mail pushes again.
func TestPushFullPath(t *testing.T) {
	r, a := startPushRelay(t, time.Hour)
	alice, bob, carol, dave := r.register(t, 1), r.register(t, 1), r.register(t, 1), r.register(t, 1)
	bobTok, carolTok, daveTok := r.pushToken(t, bob), r.pushToken(t, carol), r.pushToken(t, dave)
	ac := r.session(t, alice, 0)

	const n = 5
	for i := range n {
		if _, err := sendText(t, ac, bob, []uint32{1}, string(rune('a'+i))); err != nil {
			t.Fatal(err)
		}
	}
	req := a.Next(t, 10*time.Second)
	if req.Token != bobTok || req.Status != 200 {
		t.Fatalf("first push: token %s… status %d, want bob's", req.Token[:8], req.Status)
	}
	// Coalescing is decided before a send is answered, so this is exact.
	if got := r.counter(t, "pigeonhole_push_coalesced_total"); got != n-1 {
		t.Errorf("coalesced = %v, want %d", got, n-1)
	}
	// Control: carol's push is the next thing APNs sees.
	if _, err := sendText(t, ac, carol, []uint32{1}, "c"); err != nil {
		t.Fatal(err)
	}
	if req := a.Next(t, 10*time.Second); req.Token != carolTok {
		t.Fatal("a second push for bob reached APNs")
	}

	// Bob connects and drains everything, in order.
	bc := r.session(t, bob, 16)
	for i := range n {
		env := nextEnvelope(t, bc)
		if string(env.Content) != string(rune('a'+i)) {
			t.Fatalf("envelope %d = %q", i, env.Content)
		}
		if err := bc.Ack(env.Seq); err != nil {
			t.Fatal(err)
		}
	}
	nextKind(t, bc, client.EventDrained)
	// Connected: mail is delivered directly and pushes nothing.
	if _, err := sendText(t, ac, bob, []uint32{1}, "live"); err != nil {
		t.Fatal(err)
	}
	env := nextEnvelope(t, bc)
	if string(env.Content) != "live" {
		t.Fatalf("live envelope = %q", env.Content)
	}
	if err := bc.Ack(env.Seq); err != nil {
		t.Fatal(err)
	}
	if _, err := sendText(t, ac, dave, []uint32{1}, "d"); err != nil {
		t.Fatal(err)
	}
	if req := a.Next(t, 10*time.Second); req.Token != daveTok {
		t.Fatal("a connected device was pushed")
	}
	if err := bc.Close(); err != nil {
		t.Fatal(err)
	}

	// Bob's connection reset his window: the next mail pushes at once.
	if _, err := sendText(t, ac, bob, []uint32{1}, "again"); err != nil {
		t.Fatal(err)
	}
	if req := a.Next(t, 10*time.Second); req.Token != bobTok {
		t.Fatalf("push after bob left went to %s…", req.Token[:8])
	}
	if c := a.Count(); c != 4 {
		t.Errorf("APNs saw %d pushes, want 4", c)
	}
}

func TestSetPushTokenErrors(t *testing.T) {
	r, _ := startPushRelay(t, time.Minute)
	bob := r.register(t, 1)
	c := r.session(t, bob, 0)
	wantCode(t, c.SetAPNsToken(ctxT(t), nil, pushTopic, false), spec.CodeBadRequest)
	wantCode(t, c.SetAPNsToken(ctxT(t), bytes.Repeat([]byte{1}, 101), pushTopic, false), spec.CodeBadRequest)
	wantCode(t, c.SetAPNsToken(ctxT(t), []byte{1}, "not a topic", false), spec.CodeBadRequest)
	wantCode(t, c.SetFCMToken(ctxT(t), "fcm-token"), spec.CodePushUnavailable)
	if err := c.ClearPushToken(ctxT(t)); err != nil {
		t.Fatalf("clear: %v", err)
	}

	// Unauthenticated connections cannot set tokens.
	anon := r.dial(t)
	wantCode(t, anon.SetFCMToken(ctxT(t), "x"), spec.CodeUnauthenticated)

	// A relay without push refuses tokens and accepts clearing.
	plain := startRelay(t, testConfig())
	carol := plain.register(t, 1)
	pc := plain.session(t, carol, 0)
	wantCode(t, pc.SetAPNsToken(ctxT(t), []byte{1}, pushTopic, false), spec.CodePushUnavailable)
	// A malformed token is BAD_REQUEST there too: the malformed check
	// comes first, whatever the relay's push configuration
	// (spec/protocol.md, Registering a token).
	wantCode(t, pc.SetAPNsToken(ctxT(t), nil, pushTopic, false), spec.CodeBadRequest)
	wantCode(t, pc.SetAPNsToken(ctxT(t), []byte{1}, "not a topic", false), spec.CodeBadRequest)
	wantCode(t, pc.SetFCMToken(ctxT(t), "not a token!"), spec.CodeBadRequest)
	wantCode(t, c.SetAPNsToken(ctxT(t), nil, "not a topic", false), spec.CodeBadRequest)
	if err := pc.ClearPushToken(ctxT(t)); err != nil {
		t.Fatalf("clear without push: %v", err)
	}
}
