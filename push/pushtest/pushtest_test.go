package pushtest_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/errorutils"
	"firebase.google.com/go/v4/messaging"
	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/token"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"google.golang.org/api/option"

	"github.com/pigeonhole/pigeonhole/push/pushtest"
)

const (
	wait     = 10 * time.Second
	devToken = "6a1f7b0e9c4d2a3b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d"
	topic    = "org.example.pigeon"
)

// apnsClient is an apns2 client wired to a, with a provider token signed
// by the given key.
func apnsClient(t *testing.T, a *pushtest.APNs, key *ecdsa.PrivateKey, keyID, teamID string) *apns2.Client {
	t.Helper()
	c := apns2.NewTokenClient(&token.Token{AuthKey: key, KeyID: keyID, TeamID: teamID})
	c.Host = a.URL
	c.HTTPClient = a.Client
	return c
}

func push(t *testing.T, c *apns2.Client, n *apns2.Notification) *apns2.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	res, err := c.PushWithContext(ctx, n)
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	return res
}

func TestAPNsWithApns2(t *testing.T) {
	a := pushtest.NewAPNs(t)
	key, err := token.AuthKeyFromBytes(a.AuthKey)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.KeyID) != 10 || len(a.TeamID) != 10 {
		t.Fatalf("KeyID %q, TeamID %q: want 10 characters each", a.KeyID, a.TeamID)
	}
	c := apnsClient(t, a, key, a.KeyID, a.TeamID)
	payload := []byte(`{"aps":{"content-available":1}}`)

	res := push(t, c, &apns2.Notification{
		DeviceToken: devToken, Topic: topic, Payload: payload,
		PushType: apns2.PushTypeBackground, Priority: apns2.PriorityLow,
		ApnsID: "0e6b3c5a-1d2f-4a8b-9c7d-112233445566", CollapseID: "wake",
		Expiration: time.Now().Add(time.Hour),
	})
	if !res.Sent() || res.Reason != "" {
		t.Fatalf("push: %d %q, want 200", res.StatusCode, res.Reason)
	}
	if res.ApnsID != "0e6b3c5a-1d2f-4a8b-9c7d-112233445566" {
		t.Errorf("apns-id %q, want the request's", res.ApnsID)
	}
	got := a.Next(t, wait)
	if got.Token != devToken || got.Status != 200 || got.Reason != "" {
		t.Errorf("Next: token %q status %d reason %q", got.Token, got.Status, got.Reason)
	}
	if !bytes.Equal(got.Body, payload) {
		t.Errorf("Next body %q, want %q", got.Body, payload)
	}
	for h, want := range map[string]string{
		"apns-topic": topic, "apns-push-type": "background", "apns-priority": "5",
		"apns-collapse-id": "wake",
	} {
		if v := got.Header.Get(h); v != want {
			t.Errorf("header %s = %q, want %q", h, v, want)
		}
	}
	if !strings.HasPrefix(got.Header.Get("authorization"), "bearer ") {
		t.Errorf("authorization %q", got.Header.Get("authorization"))
	}

	// A generated apns-id when the request has none.
	res = push(t, c, &apns2.Notification{DeviceToken: devToken, Topic: topic, Payload: payload})
	if !res.Sent() || len(res.ApnsID) != 36 {
		t.Fatalf("push: %d, apns-id %q", res.StatusCode, res.ApnsID)
	}
	a.Next(t, wait)

	// A dead token.
	const dead = "00ff00ff"
	a.Answer(dead, 410, apns2.ReasonUnregistered)
	res = push(t, c, &apns2.Notification{DeviceToken: dead, Topic: topic, Payload: payload})
	if res.StatusCode != 410 || res.Reason != apns2.ReasonUnregistered || res.Timestamp.IsZero() {
		t.Fatalf("dead token: %d %q at %v, want 410 Unregistered with a timestamp", res.StatusCode, res.Reason, res.Timestamp)
	}
	if got := a.Next(t, wait); got.Token != dead || got.Status != 410 || got.Reason != apns2.ReasonUnregistered {
		t.Errorf("Next: %+v", got)
	}

	// AnswerNext wins over Answer, for exactly n requests, in order.
	a.AnswerNext(1, 429, apns2.ReasonTooManyRequests)
	a.AnswerNext(1, 503, apns2.ReasonServiceUnavailable)
	for _, want := range []struct {
		status int
		reason string
	}{{429, apns2.ReasonTooManyRequests}, {503, apns2.ReasonServiceUnavailable}, {410, apns2.ReasonUnregistered}} {
		res = push(t, c, &apns2.Notification{DeviceToken: dead, Topic: topic, Payload: payload})
		if res.StatusCode != want.status || res.Reason != want.reason {
			t.Errorf("got %d %q, want %d %q", res.StatusCode, res.Reason, want.status, want.reason)
		}
		if got := a.Next(t, wait); got.Status != want.status {
			t.Errorf("Next status %d, want %d", got.Status, want.status)
		}
	}

	// A provider token signed with another key.
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	res = push(t, apnsClient(t, a, other, a.KeyID, a.TeamID), &apns2.Notification{DeviceToken: devToken, Topic: topic, Payload: payload})
	if res.StatusCode != 403 || res.Reason != apns2.ReasonInvalidProviderToken {
		t.Errorf("other key: %d %q, want 403 InvalidProviderToken", res.StatusCode, res.Reason)
	}
	// Right key, wrong key id or team.
	for _, ids := range [][2]string{{"ABCDEFGHIJ", a.TeamID}, {a.KeyID, "ABCDEFGHIJ"}} {
		res = push(t, apnsClient(t, a, key, ids[0], ids[1]), &apns2.Notification{DeviceToken: devToken, Topic: topic, Payload: payload})
		if res.StatusCode != 403 || res.Reason != apns2.ReasonInvalidProviderToken {
			t.Errorf("key id %s team %s: %d %q, want 403 InvalidProviderToken", ids[0], ids[1], res.StatusCode, res.Reason)
		}
	}
	if n := a.Count(); n != 9 {
		t.Errorf("Count = %d, want 9", n)
	}
}

// jwtES256 signs an APNs provider token by hand.
func jwtES256(t *testing.T, key *ecdsa.PrivateKey, kid, iss string, iat int64) string {
	t.Helper()
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(map[string]string{"alg": "ES256", "kid": kid})
	c, _ := json.Marshal(map[string]any{"iss": iss, "iat": iat})
	signed := enc.EncodeToString(h) + "." + enc.EncodeToString(c)
	sum := sha256.Sum256([]byte(signed))
	r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signed + "." + enc.EncodeToString(sig)
}

func TestAPNsChecks(t *testing.T) {
	a := pushtest.NewAPNs(t)
	key, err := token.AuthKeyFromBytes(a.AuthKey)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	good := "bearer " + jwtES256(t, key, a.KeyID, a.TeamID, now)
	okBody := `{"aps":{}}`
	tests := []struct {
		name, method, path, auth, topic, body string
		header                                [2]string
		status                                int
		reason                                string
	}{
		{"ok", "POST", "/3/device/" + devToken, good, topic, okBody, [2]string{}, 200, ""},
		{"bad path", "POST", "/3/devices/" + devToken, good, topic, okBody, [2]string{}, 404, "BadPath"},
		{"method", "GET", "/3/device/" + devToken, good, topic, "", [2]string{}, 405, "MethodNotAllowed"},
		{"no auth", "POST", "/3/device/" + devToken, "", topic, okBody, [2]string{}, 403, "MissingProviderToken"},
		{"not bearer", "POST", "/3/device/" + devToken, "basic x", topic, okBody, [2]string{}, 403, "InvalidProviderToken"},
		{"garbage jwt", "POST", "/3/device/" + devToken, "bearer a.b.c", topic, okBody, [2]string{}, 403, "InvalidProviderToken"},
		{"stale iat", "POST", "/3/device/" + devToken, "bearer " + jwtES256(t, key, a.KeyID, a.TeamID, now-3700), topic, okBody, [2]string{}, 403, "ExpiredProviderToken"},
		{"future iat", "POST", "/3/device/" + devToken, "bearer " + jwtES256(t, key, a.KeyID, a.TeamID, now+3600), topic, okBody, [2]string{}, 403, "InvalidProviderToken"},
		{"no device token", "POST", "/3/device/", good, topic, okBody, [2]string{}, 400, "MissingDeviceToken"},
		{"non-hex token", "POST", "/3/device/xyz", good, topic, okBody, [2]string{}, 400, "BadDeviceToken"},
		{"no topic", "POST", "/3/device/" + devToken, good, "", okBody, [2]string{}, 400, "MissingTopic"},
		{"bad apns-id", "POST", "/3/device/" + devToken, good, topic, okBody, [2]string{"apns-id", "nope"}, 400, "BadMessageId"},
		{"bad priority", "POST", "/3/device/" + devToken, good, topic, okBody, [2]string{"apns-priority", "7"}, 400, "BadPriority"},
		{"bad expiration", "POST", "/3/device/" + devToken, good, topic, okBody, [2]string{"apns-expiration", "soon"}, 400, "BadExpirationDate"},
		{"bad push type", "POST", "/3/device/" + devToken, good, topic, okBody, [2]string{"apns-push-type", "shout"}, 400, "InvalidPushType"},
		{"empty", "POST", "/3/device/" + devToken, good, topic, "", [2]string{}, 400, "PayloadEmpty"},
		{"too large", "POST", "/3/device/" + devToken, good, topic, `{"a":"` + strings.Repeat("x", 4096) + `"}`, [2]string{}, 413, "PayloadTooLarge"},
		{"voip 4100", "POST", "/3/device/" + devToken, good, topic, `{"a":"` + strings.Repeat("x", 4090) + `"}`, [2]string{"apns-push-type", "voip"}, 200, ""},
		{"not json", "POST", "/3/device/" + devToken, good, topic, "hello", [2]string{}, 400, "BadMessage"},
	}
	for _, tt := range tests {
		req, err := http.NewRequest(tt.method, a.URL+tt.path, strings.NewReader(tt.body))
		if err != nil {
			t.Fatal(err)
		}
		if tt.auth != "" {
			req.Header.Set("authorization", tt.auth)
		}
		if tt.topic != "" {
			req.Header.Set("apns-topic", tt.topic)
		}
		if tt.header[0] != "" {
			req.Header.Set(tt.header[0], tt.header[1])
		}
		res, err := a.Client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		var r struct{ Reason string }
		json.Unmarshal(body, &r)
		if res.StatusCode != tt.status || r.Reason != tt.reason || res.ProtoMajor != 2 {
			t.Errorf("%s: HTTP/%d %d %q, want HTTP/2 %d %q", tt.name, res.ProtoMajor, res.StatusCode, body, tt.status, tt.reason)
		}
		if len(res.Header.Get("apns-id")) != 36 {
			t.Errorf("%s: apns-id %q", tt.name, res.Header.Get("apns-id"))
		}
		if got := a.Next(t, wait); got.Status != tt.status || got.Reason != tt.reason || string(got.Body) != tt.body {
			t.Errorf("%s: Next = %d %q body %d bytes", tt.name, got.Status, got.Reason, len(got.Body))
		}
	}

	// HTTP/1.1 gets a 505. (The server offers only h2 in ALPN, but Go's
	// TLS server lets a client offering http/1.1 connect as if it had not
	// used ALPN.)
	roots := a.Client.Transport.(*http.Transport).TLSClientConfig.RootCAs
	for _, alpn := range [][]string{{"http/1.1"}, nil} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, NextProtos: alpn}}
		res, err := (&http.Client{Transport: tr}).Post(a.URL+"/3/device/"+devToken, "application/json", strings.NewReader(okBody))
		if err != nil {
			t.Fatalf("ALPN %q: %v", alpn, err)
		}
		res.Body.Close()
		tr.CloseIdleConnections()
		if res.StatusCode != http.StatusHTTPVersionNotSupported || res.ProtoMajor != 1 {
			t.Errorf("ALPN %q: got %s %s, want HTTP/1.1 505", alpn, res.Proto, res.Status)
		}
		if got := a.Next(t, wait); got.Status != 505 || got.Reason != "HTTP2Required" {
			t.Errorf("ALPN %q: Next = %d %q", alpn, got.Status, got.Reason)
		}
	}
}

// fatalTB records a Fatalf instead of failing the real test.
type fatalTB struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.msg = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func TestNextTimesOut(t *testing.T) {
	a := pushtest.NewAPNs(t)
	ft := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.Next(ft, 20*time.Millisecond)
		t.Error("Next returned with nothing received")
	}()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatal("Next did not give up")
	}
	if !strings.Contains(ft.msg, "no new APNs request") {
		t.Errorf("Fatalf message %q", ft.msg)
	}
}

// fcmApp returns a Firebase messaging client wired to f, with its OAuth
// token requests going to f's token endpoint through f.Client.
func fcmApp(t *testing.T, f *pushtest.FCM, projectID string, credentials []byte) (*messaging.Client, oauth2.TokenSource) {
	t.Helper()
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, f.Client)
	creds, err := google.CredentialsFromJSONWithType(ctx, credentials, google.ServiceAccount,
		"https://www.googleapis.com/auth/firebase.messaging")
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &oauth2.Transport{Source: creds.TokenSource, Base: f.Client.Transport}}
	app, err := firebase.NewApp(ctx, &firebase.Config{ProjectID: projectID},
		option.WithHTTPClient(hc), option.WithEndpoint(f.URL+"/v1"))
	if err != nil {
		t.Fatal(err)
	}
	client, err := app.Messaging(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return client, creds.TokenSource
}

func send(c *messaging.Client, tok string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	return c.Send(ctx, &messaging.Message{
		Token:   tok,
		Data:    map[string]string{"f": "1"},
		Android: &messaging.AndroidConfig{Priority: "high"},
	})
}

func TestFCMWithFirebase(t *testing.T) {
	f := pushtest.NewFCM(t)
	c, _ := fcmApp(t, f, f.ProjectID, f.Credentials)

	name, err := send(c, "tok-1")
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	if !strings.HasPrefix(name, "projects/"+f.ProjectID+"/messages/") {
		t.Errorf("name %q", name)
	}
	if n := f.TokenRequests(); n != 1 {
		t.Errorf("TokenRequests = %d, want 1", n)
	}
	got := f.Next(t, wait)
	if got.Token != "tok-1" || got.Status != 200 || got.Code != "" {
		t.Errorf("Next: token %q status %d code %q", got.Token, got.Status, got.Code)
	}
	if !strings.HasPrefix(got.Header.Get("Authorization"), "Bearer ya29.") {
		t.Errorf("Authorization %q", got.Header.Get("Authorization"))
	}
	var body struct {
		Message struct {
			Token   string
			Data    map[string]string
			Android struct{ Priority string }
		}
	}
	if err := json.Unmarshal(got.Body, &body); err != nil || body.Message.Data["f"] != "1" || body.Message.Android.Priority != "high" {
		t.Errorf("body %s: %v", got.Body, err)
	}

	// Errors, each recognised by the client's own predicates.
	checks := []struct {
		status int
		code   string
		is     func(error) bool
	}{
		{404, "UNREGISTERED", messaging.IsUnregistered},
		{400, "INVALID_ARGUMENT", messaging.IsInvalidArgument},
		{403, "SENDER_ID_MISMATCH", messaging.IsSenderIDMismatch},
		{401, "THIRD_PARTY_AUTH_ERROR", messaging.IsThirdPartyAuthError},
		{500, "INTERNAL", messaging.IsInternal},
		{429, "QUOTA_EXCEEDED", messaging.IsQuotaExceeded},
	}
	for _, ck := range checks {
		tok := "tok-" + ck.code
		f.Answer(tok, ck.status, ck.code)
		_, err := send(c, tok)
		if !ck.is(err) {
			t.Errorf("%d %s: err %v not recognised", ck.status, ck.code, err)
		}
		if got := f.Next(t, wait); got.Token != tok || got.Status != ck.status || got.Code != ck.code {
			t.Errorf("%s: Next = %q %d %q", ck.code, got.Token, got.Status, got.Code)
		}
	}

	// AnswerNext: once, for any token, ahead of Answer.
	f.AnswerNext(1, 429, "QUOTA_EXCEEDED")
	if _, err := send(c, "tok-UNREGISTERED"); !messaging.IsQuotaExceeded(err) {
		t.Errorf("AnswerNext 429: %v", err)
	}
	if _, err := send(c, "tok-UNREGISTERED"); !messaging.IsUnregistered(err) {
		t.Errorf("after AnswerNext: %v", err)
	}
	f.Next(t, wait)
	f.Next(t, wait)

	// The client retries a 503 once at once by itself.
	f.AnswerNext(1, 503, "UNAVAILABLE")
	if _, err := send(c, "tok-2"); err != nil {
		t.Errorf("503 then 200: %v", err)
	}
	if got := f.Next(t, wait); got.Status != 503 || got.Code != "UNAVAILABLE" {
		t.Errorf("first try: %d %q", got.Status, got.Code)
	}
	if got := f.Next(t, wait); got.Status != 200 {
		t.Errorf("retry: %d", got.Status)
	}

	if n := f.TokenRequests(); n != 1 {
		t.Errorf("TokenRequests = %d, want 1 (the token is reused)", n)
	}
	if n := f.Count(); n != 11 {
		t.Errorf("Count = %d, want 11", n)
	}

	// Another project: the IAM error, which is no reason to drop a token.
	other, _ := fcmApp(t, f, "someone-else", f.Credentials)
	_, err = send(other, "tok-1")
	if !errorutils.IsPermissionDenied(err) || messaging.IsSenderIDMismatch(err) {
		t.Errorf("other project: %v", err)
	}
	if got := f.Next(t, wait); got.Status != 403 || got.Code != "" {
		t.Errorf("other project: Next = %d %q", got.Status, got.Code)
	}
}

func TestFCMRejectsBadCredentials(t *testing.T) {
	f := pushtest.NewFCM(t)

	// The same service account with another key: no token.
	var sa map[string]any
	if err := json.Unmarshal(f.Credentials, &sa); err != nil {
		t.Fatal(err)
	}
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	sa["private_key"] = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	forged, _ := json.Marshal(sa)
	_, ts := fcmApp(t, f, f.ProjectID, forged)
	if _, err := ts.Token(); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Errorf("forged key: %v, want invalid_grant", err)
	}
	if n := f.TokenRequests(); n != 0 {
		t.Errorf("TokenRequests = %d, want 0", n)
	}

	// No access token, or a made-up one.
	for _, auth := range []string{"", "Bearer ya29.made-up"} {
		req, _ := http.NewRequest("POST", f.URL+"/v1/projects/"+f.ProjectID+"/messages:send",
			strings.NewReader(`{"message":{"token":"tok-1"}}`))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		res, err := f.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e struct {
			Error struct {
				Code   int
				Status string
			}
		}
		json.NewDecoder(res.Body).Decode(&e)
		res.Body.Close()
		if res.StatusCode != 401 || e.Error.Code != 401 || e.Error.Status != "UNAUTHENTICATED" || res.ProtoMajor != 2 {
			t.Errorf("auth %q: HTTP/%d %d %+v", auth, res.ProtoMajor, res.StatusCode, e)
		}
		if got := f.Next(t, wait); got.Status != 401 || got.Token != "tok-1" {
			t.Errorf("Next = %+v", got)
		}
	}
}
