package push

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pigeonhole/pigeonhole/push/pushtest"
)

const wait = 10 * time.Second

// protocolDoc is spec/protocol.md, where the exact pushes are written.
func protocolDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../spec/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestAPNsPushIsExactlyTheDocumentedRequest checks the path, every header
// and the body byte for byte, and that spec/protocol.md shows the same.
func TestAPNsPushIsExactlyTheDocumentedRequest(t *testing.T) {
	a := pushtest.NewAPNs(t)
	h := start(t, Config{APNs: apnsConfig(a)})
	d, tok := device(1), apnsTok(0xab)
	mustSet(t, h, d, tok)
	h.Notify(d)
	req := a.Next(t, wait)
	if req.Status != http.StatusOK {
		t.Fatalf("APNs answered %d %s", req.Status, req.Reason)
	}
	if req.Token != strings.Repeat("ab", 32) {
		t.Errorf("pushed to token %s", req.Token)
	}
	want := map[string]string{
		"apns-topic":       "org.pigeonhole.app",
		"apns-push-type":   "alert",
		"apns-priority":    "10",
		"apns-collapse-id": "pigeonhole",
		"apns-expiration":  strconv.FormatInt(testClock.Add(24*time.Hour).Unix(), 10),
		"content-type":     "application/json; charset=utf-8",
	}
	for k, v := range want {
		if got := req.Header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	if id := req.Header.Get("apns-id"); id != "" {
		t.Errorf("sent apns-id %q; the relay must not send an identifier", id)
	}
	if !strings.HasPrefix(req.Header.Get("authorization"), "bearer ") {
		t.Errorf("authorization = %q", req.Header.Get("authorization"))
	}
	const body = `{"aps":{"alert":{"loc-key":"PIGEONHOLE_NEW_MESSAGE"},"mutable-content":1,"sound":"default"}}`
	if string(req.Body) != body {
		t.Errorf("body = %s\nwant   %s", req.Body, body)
	}
	if !strings.Contains(protocolDoc(t), "\n"+body+"\n") {
		t.Error("spec/protocol.md does not show the APNs body")
	}
	if ev := h.attempt(t); ev.r.outcome != sent {
		t.Errorf("outcome %v", ev.r)
	}
	if got := testutil.ToFloat64(h.m.sent.WithLabelValues("apns")); got != 1 {
		t.Errorf("sent metric = %v", got)
	}
}

func TestFCMPushIsExactlyTheDocumentedRequest(t *testing.T) {
	f := pushtest.NewFCM(t)
	h := start(t, Config{FCM: fcmConfig(f)})
	d, tok := device(1), FCMToken("dXNlcjE6QVBBOTFiSF9hYmM-ZGVm_ghi")
	mustSet(t, h, d, tok)
	h.Notify(d)
	req := f.Next(t, wait)
	if req.Status != http.StatusOK {
		t.Fatalf("FCM answered %d %s", req.Status, req.Code)
	}
	const template = `{"message":{"data":{"pigeonhole":"wake"},"android":{"ttl":"86400s","collapse_key":"pigeonhole","priority":"high"},"token":"<registration token>"}}`
	body := strings.Replace(template, "<registration token>", tok.Value, 1)
	if string(req.Body) != body {
		t.Errorf("body = %s\nwant   %s", req.Body, body)
	}
	if !strings.Contains(protocolDoc(t), "\n"+template+"\n") {
		t.Error("spec/protocol.md does not show the FCM body")
	}
	if !strings.HasPrefix(req.Header.Get("Authorization"), "Bearer ") {
		t.Errorf("Authorization = %q", req.Header.Get("Authorization"))
	}
	h.attempt(t)
	// A second device reuses the OAuth token.
	mustSet(t, h, device(2), FCMToken("second-token"))
	h.Notify(device(2))
	f.Next(t, wait)
	h.attempt(t)
	if n := f.TokenRequests(); n != 1 {
		t.Errorf("%d OAuth token grants for two pushes, want 1", n)
	}
}

// TestCoalescing: one push per window however much mail comes; the window
// resets when the device connects.
func TestCoalescing(t *testing.T) {
	a := pushtest.NewAPNs(t)
	h := start(t, Config{APNs: apnsConfig(a), Window: time.Hour})
	d := device(1)
	mustSet(t, h, d, apnsTok(1))
	mustSet(t, h, device(9), apnsTok(9))
	for range 5 {
		h.Notify(d)
	}
	a.Next(t, wait)
	h.attempt(t)
	h.noAttemptBefore(t, device(9))
	if req := a.Next(t, wait); req.Token != apnsTok(9).Value {
		t.Fatalf("second push went to %s, want the control", req.Token)
	}
	if got := testutil.ToFloat64(h.m.coalesced.WithLabelValues("apns")); got != 4 {
		t.Errorf("coalesced = %v, want 4", got)
	}
	if got := testutil.ToFloat64(h.m.queued.WithLabelValues("apns")); got != 2 {
		t.Errorf("queued = %v, want 2 (one per device)", got)
	}
	h.Connected(d)
	h.Notify(d)
	if req := a.Next(t, wait); req.Token != apnsTok(1).Value {
		t.Fatalf("push after reconnect went to %s", req.Token)
	}
}

// TestNoTokenNoPush: a device without a token costs one lookup per window
// and sends nothing.
func TestNoTokenNoPush(t *testing.T) {
	a := pushtest.NewAPNs(t)
	h := start(t, Config{APNs: apnsConfig(a)})
	mustSet(t, h, device(9), apnsTok(9))
	h.Notify(device(1))
	h.Notify(device(1))
	h.noAttemptBefore(t, device(9))
	// Registering a token ends the "no token" memory at once.
	mustSet(t, h, device(1), apnsTok(1))
	h.Notify(device(1))
	if req := a.Next(t, wait); req.Token != apnsTok(9).Value {
		t.Fatalf("first push to %s", req.Token)
	}
	if req := a.Next(t, wait); req.Token != apnsTok(1).Value {
		t.Fatalf("second push to %s", req.Token)
	}
}

// TestDeadTokensAreDeleted covers every "dead" answer of both providers.
func TestDeadTokensAreDeleted(t *testing.T) {
	a := pushtest.NewAPNs(t)
	f := pushtest.NewFCM(t)
	h := start(t, Config{APNs: apnsConfig(a), FCM: fcmConfig(f)})
	cases := []struct {
		tok    Token
		answer func(Token)
		reason string
	}{
		{apnsTok(1), func(k Token) { a.Answer(k.Value, 410, "Unregistered") }, "Unregistered"},
		{apnsTok(2), func(k Token) { a.Answer(k.Value, 400, "BadDeviceToken") }, "BadDeviceToken"},
		{apnsTok(3), func(k Token) { a.Answer(k.Value, 400, "DeviceTokenNotForTopic") }, "DeviceTokenNotForTopic"},
		{FCMToken("fcm-1"), func(k Token) { f.Answer(k.Value, 404, "UNREGISTERED") }, "UNREGISTERED"},
		{FCMToken("fcm-2"), func(k Token) { f.Answer(k.Value, 400, "INVALID_ARGUMENT") }, "INVALID_ARGUMENT"},
		{apnsTok(4), func(k Token) { a.Answer(k.Value, 410, "") }, "HTTP 4xx"},
	}
	for i, c := range cases {
		d := device(byte(10 + i))
		mustSet(t, h, d, c.tok)
		c.answer(c.tok)
		h.Notify(d)
		ev := h.attempt(t)
		if ev.r.outcome != dead || ev.r.reason != c.reason {
			t.Errorf("%s: outcome %+v, want dead %s", c.reason, ev.r, c.reason)
		}
		if _, err := h.store.Get(context.Background(), d); !errors.Is(err, ErrNoToken) {
			t.Errorf("%s: token still stored (err %v)", c.reason, err)
		}
		if got := testutil.ToFloat64(h.m.failed.WithLabelValues(c.tok.Provider.String(), c.reason)); got != 1 {
			t.Errorf("%s: failed metric = %v", c.reason, got)
		}
	}
	if got := testutil.ToFloat64(h.m.removed.WithLabelValues("apns")) + testutil.ToFloat64(h.m.removed.WithLabelValues("fcm")); got != 6 {
		t.Errorf("removed = %v, want 6", got)
	}
}

// TestRetries: throttling and server errors are retried with backoff until
// the provider accepts; a provider that keeps failing is given up on after
// MaxAttempts, keeping the token.
func TestRetries(t *testing.T) {
	a := pushtest.NewAPNs(t)
	f := pushtest.NewFCM(t)
	h := start(t, Config{APNs: apnsConfig(a), FCM: fcmConfig(f), MaxAttempts: 3})

	a.AnswerNext(1, 429, "TooManyRequests")
	a.AnswerNext(1, 500, "InternalServerError")
	mustSet(t, h, device(1), apnsTok(1))
	h.Notify(device(1))
	for i, want := range []outcome{retry, retry, sent} {
		if ev := h.attempt(t); ev.r.outcome != want {
			t.Fatalf("attempt %d: %+v, want %v", i+1, ev.r, want)
		}
	}
	if n := a.Count(); n != 3 {
		t.Errorf("APNs saw %d requests, want 3", n)
	}

	a.AnswerNext(3, 503, "ServiceUnavailable")
	mustSet(t, h, device(2), apnsTok(2))
	h.Notify(device(2))
	for range 3 {
		h.attempt(t)
	}
	mustSet(t, h, device(9), apnsTok(9))
	h.noAttemptBefore(t, device(9))
	if got := testutil.ToFloat64(h.m.failed.WithLabelValues("apns", "ServiceUnavailable")); got != 1 {
		t.Errorf("failed{ServiceUnavailable} = %v, want 1", got)
	}
	if _, err := h.store.Get(context.Background(), device(2)); err != nil {
		t.Errorf("a token that failed for server errors was removed: %v", err)
	}

	f.AnswerNext(1, 429, "QUOTA_EXCEEDED")
	mustSet(t, h, device(3), FCMToken("fcm-3"))
	h.Notify(device(3))
	if ev := h.attempt(t); ev.r.outcome != retry || ev.r.reason != "QUOTA_EXCEEDED" {
		t.Fatalf("FCM 429: %+v", ev.r)
	}
	if ev := h.attempt(t); ev.r.outcome != sent {
		t.Fatalf("FCM retry: %+v", ev.r)
	}
	if got := testutil.ToFloat64(h.m.retries.WithLabelValues("apns")); got != 4 {
		t.Errorf("apns retries = %v, want 4", got)
	}
}

// TestWrongProjectKeepsTokens: SENDER_ID_MISMATCH is what every token
// answers when the relay has another project's credentials, so it must
// not delete tokens.
func TestWrongProjectKeepsTokens(t *testing.T) {
	f := pushtest.NewFCM(t)
	h := start(t, Config{FCM: fcmConfig(f)})
	tok := FCMToken("fcm-kept")
	mustSet(t, h, device(1), tok)
	f.Answer(tok.Value, 403, "SENDER_ID_MISMATCH")
	h.Notify(device(1))
	if ev := h.attempt(t); ev.r.outcome != failed || ev.r.reason != "SENDER_ID_MISMATCH" {
		t.Fatalf("outcome %+v", ev.r)
	}
	if _, err := h.store.Get(context.Background(), device(1)); err != nil {
		t.Fatalf("token gone: %v", err)
	}
}

// TestConnectedDropsARetry: a device that connects while its push waits
// to be retried is not pushed again.
func TestConnectedDropsARetry(t *testing.T) {
	a := pushtest.NewAPNs(t)
	h := start(t, Config{APNs: apnsConfig(a), Backoff: time.Hour, RetryFor: 2 * time.Hour})
	mustSet(t, h, device(1), apnsTok(1))
	a.AnswerNext(1, 503, "ServiceUnavailable")
	h.Notify(device(1))
	if ev := h.attempt(t); ev.r.outcome != retry {
		t.Fatalf("first attempt %+v", ev.r)
	}
	h.mu.Lock()
	old := h.recent[device(1)]
	h.mu.Unlock()
	h.Connected(device(1))
	// The waiting job's entry is no longer the device's: when its timer
	// fires, requeue drops it.
	h.mu.Lock()
	stale := h.recent[device(1)] != old
	h.mu.Unlock()
	if !stale {
		t.Fatal("Connected left the waiting push in place")
	}
	h.Notify(device(1)) // the window was reset: a new push goes out at once
	if req := a.Next(t, wait); req.Status != 503 {
		t.Fatalf("first request answered %d", req.Status)
	}
	if req := a.Next(t, wait); req.Status != 200 {
		t.Fatalf("push after reconnect: %d", req.Status)
	}
}

func TestExpiryOverFCMLimitRefused(t *testing.T) {
	if _, err := New(context.Background(), Config{Expiry: 29 * 24 * time.Hour}, newStore(t), nil, nil); err == nil {
		t.Fatal("an expiry over 28 days was accepted")
	}
}
