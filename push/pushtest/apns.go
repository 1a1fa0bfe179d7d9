package pushtest

import (
	"crypto/ecdsa"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// APNs payload limits, from Apple's "Sending notification requests to
// APNs".
const (
	apnsMaxPayload     = 4096 // bytes, every push type but voip
	apnsMaxVoIPPayload = 5120 // bytes, apns-push-type: voip
)

// apnsPushTypes are the values Apple documents for apns-push-type.
var apnsPushTypes = map[string]bool{
	"alert": true, "background": true, "location": true, "voip": true,
	"complication": true, "fileprovider": true, "mdm": true,
	"liveactivity": true, "pushtotalk": true, "widgets": true,
}

// APNs is a local APNs provider endpoint: HTTP/2 over TLS, POST
// /3/device/<token>, with token-based (JWT) provider authentication checked
// the way Apple checks it. Certificate-based authentication is not
// supported.
//
// Requests are checked in this order, and the first failure is the answer:
//
//	not HTTP/2                        505 {"reason":"HTTP2Required"} (not Apple's: Apple speaks only HTTP/2)
//	path not /3/device/<token>        404 BadPath
//	method not POST                   405 MethodNotAllowed
//	no authorization header           403 MissingProviderToken
//	JWT not ES256, wrong kid or iss,
//	bad signature, iat in the future  403 InvalidProviderToken
//	iat more than an hour old         403 ExpiredProviderToken
//	empty <token>                     400 MissingDeviceToken
//	<token> not hex                   400 BadDeviceToken
//	an apns-* header given twice      400 DuplicateHeaders
//	no apns-topic                     400 MissingTopic
//	apns-id not a UUID                400 BadMessageId
//	apns-priority not 1, 5 or 10      400 BadPriority
//	apns-expiration not an integer    400 BadExpirationDate
//	apns-collapse-id over 64 bytes    400 BadCollapseId
//	unknown apns-push-type            400 InvalidPushType
//	empty body                        400 PayloadEmpty
//	body over 4096 bytes (5120 voip)  413 PayloadTooLarge
//	body not a JSON object            400 BadMessage (Apple documents no reason for this)
//	an AnswerNext answer pending      that answer
//	an Answer set for <token>         that answer
//	otherwise                         200
//
// Every response carries an apns-id header: the request's own, or a fresh
// UUID. Error bodies are {"reason":"..."}, with "timestamp" (Unix
// milliseconds) added to a 410.
type APNs struct {
	// URL is "https://127.0.0.1:PORT": set it as apns2 Client.Host.
	URL string
	// Client trusts the server's certificate and speaks HTTP/2: set it as
	// apns2 Client.HTTPClient.
	Client *http.Client
	// KeyID is the 10-character id of AuthKey, the JWT header's kid.
	KeyID string
	// TeamID is the 10-character team id, the JWT's iss claim.
	TeamID string
	// AuthKey is the contents of a .p8 file: a PEM "PRIVATE KEY" block
	// holding a PKCS#8 P-256 key, generated fresh for each server.
	AuthKey []byte
	// CertPEM is the server's certificate, PEM-encoded, for a client in
	// another process to trust.
	CertPEM []byte

	close   func()
	pub     *ecdsa.PublicKey
	answers answers
	log     recorder[APNsRequest]
}

// APNsRequest is one request the APNs server received, and its answer.
type APNsRequest struct {
	// Token is the <token> path segment, as sent.
	Token string
	// Header holds the request headers: apns-topic, apns-push-type,
	// apns-priority, apns-expiration, apns-collapse-id, apns-id,
	// authorization and the rest.
	Header http.Header
	// Body is the exact request body.
	Body []byte
	// Status is the HTTP status the server answered.
	Status int
	// Reason is the reason the server answered, "" with a 200.
	Reason string
}

// NewAPNs starts an APNs endpoint with a fresh key, key id and team id. It
// is closed when the test ends.
func NewAPNs(t testing.TB) *APNs {
	t.Helper()
	a, err := StartAPNs()
	if err != nil {
		t.Fatalf("pushtest: %v", err)
	}
	t.Cleanup(a.Close)
	return a
}

// StartAPNs is NewAPNs outside a test (for example in a testscript
// command); the caller closes it.
func StartAPNs() (*APNs, error) {
	key, p8, err := newECKey()
	if err != nil {
		return nil, fmt.Errorf("generating the APNs auth key: %w", err)
	}
	a := &APNs{
		KeyID:   randomID(10),
		TeamID:  randomID(10),
		AuthKey: p8,
		pub:     &key.PublicKey,
	}
	a.URL, a.Client, a.CertPEM, a.close = startTLS(http.HandlerFunc(a.serve))
	return a, nil
}

// Close stops the server.
func (a *APNs) Close() { a.close() }

// Answer makes every later request for the device token get status and
// reason, such as 410 "Unregistered" or 400 "BadDeviceToken". It applies
// only to requests that pass every check above.
func (a *APNs) Answer(token string, status int, reason string) {
	a.answers.set(token, status, reason)
}

// AnswerNext makes the next n requests, for any token, get status and
// reason, such as 429 "TooManyRequests", 500 "InternalServerError" or 503
// "ServiceUnavailable". It takes precedence over Answer, applies only to
// requests that pass every check, and queues after earlier AnswerNext
// calls. Like Apple, the server sends no Retry-After.
func (a *APNs) AnswerNext(n int, status int, reason string) {
	a.answers.push(n, status, reason)
}

// Next returns the next request received, in arrival order and including
// rejected ones, waiting up to timeout for it. It fails the test if none
// comes.
func (a *APNs) Next(t testing.TB, timeout time.Duration) APNsRequest {
	t.Helper()
	r, err := a.NextWithin(timeout)
	if err != nil {
		t.Fatalf("pushtest: %v", err)
	}
	return r
}

// NextWithin is Next returning an error instead of failing a test.
func (a *APNs) NextWithin(timeout time.Duration) (APNsRequest, error) {
	return a.log.next(timeout, "APNs")
}

// Count returns how many requests the server has received so far.
func (a *APNs) Count() int {
	return a.log.count()
}

func (a *APNs) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	token, pathOK := strings.CutPrefix(r.URL.Path, "/3/device/")
	if !pathOK {
		token = ""
	}
	status, reason := a.check(r, token, pathOK, body)
	a.log.add(APNsRequest{
		Token:  token,
		Header: r.Header.Clone(),
		Body:   body,
		Status: status,
		Reason: reason,
	})

	id := r.Header.Get("apns-id")
	if !isUUID(id) {
		id = newUUID()
	}
	w.Header().Set("apns-id", id)
	if status == http.StatusOK {
		w.WriteHeader(status)
		return
	}
	resp := struct {
		Reason    string `json:"reason"`
		Timestamp int64  `json:"timestamp,omitempty"`
	}{Reason: reason}
	if status == http.StatusGone {
		resp.Timestamp = time.Now().UnixMilli()
	}
	writeJSON(w, status, resp)
}

// check decides the answer to one request, as listed on APNs.
func (a *APNs) check(r *http.Request, token string, pathOK bool, body []byte) (int, string) {
	switch {
	case r.ProtoMajor != 2:
		return http.StatusHTTPVersionNotSupported, "HTTP2Required"
	case !pathOK || strings.Contains(token, "/"):
		return http.StatusNotFound, "BadPath"
	case r.Method != http.MethodPost:
		return http.StatusMethodNotAllowed, "MethodNotAllowed"
	}
	if status, reason := a.checkProviderToken(r.Header.Values("authorization")); status != 0 {
		return status, reason
	}
	if token == "" {
		return http.StatusBadRequest, "MissingDeviceToken"
	}
	for i := 0; i < len(token); i++ {
		if !isHexDigit(token[i]) {
			return http.StatusBadRequest, "BadDeviceToken"
		}
	}
	for name, v := range r.Header {
		if strings.HasPrefix(strings.ToLower(name), "apns-") && len(v) > 1 {
			return http.StatusBadRequest, "DuplicateHeaders"
		}
	}
	h := r.Header
	if h.Get("apns-topic") == "" {
		return http.StatusBadRequest, "MissingTopic"
	}
	if v, ok := h["Apns-Id"]; ok && !isUUID(v[0]) {
		return http.StatusBadRequest, "BadMessageId"
	}
	if v, ok := h["Apns-Priority"]; ok && v[0] != "1" && v[0] != "5" && v[0] != "10" {
		return http.StatusBadRequest, "BadPriority"
	}
	if v, ok := h["Apns-Expiration"]; ok {
		if _, err := strconv.ParseInt(v[0], 10, 64); err != nil {
			return http.StatusBadRequest, "BadExpirationDate"
		}
	}
	if v, ok := h["Apns-Collapse-Id"]; ok && len(v[0]) > 64 {
		return http.StatusBadRequest, "BadCollapseId"
	}
	pushType := h.Get("apns-push-type")
	if v, ok := h["Apns-Push-Type"]; ok && !apnsPushTypes[v[0]] {
		return http.StatusBadRequest, "InvalidPushType"
	}
	limit := apnsMaxPayload
	if pushType == "voip" {
		limit = apnsMaxVoIPPayload
	}
	switch {
	case len(body) == 0:
		return http.StatusBadRequest, "PayloadEmpty"
	case len(body) > limit:
		return http.StatusRequestEntityTooLarge, "PayloadTooLarge"
	case !isJSONObject(body):
		return http.StatusBadRequest, "BadMessage"
	}
	if ans, ok := a.answers.take(token); ok {
		return ans.status, ans.reason
	}
	return http.StatusOK, ""
}

// checkProviderToken checks the authorization header values. It returns 0
// if the provider token is good.
func (a *APNs) checkProviderToken(auth []string) (int, string) {
	if len(auth) == 0 {
		return http.StatusForbidden, "MissingProviderToken"
	}
	const invalid = "InvalidProviderToken"
	if len(auth) > 1 || len(auth[0]) < 7 || !strings.EqualFold(auth[0][:7], "bearer ") {
		return http.StatusForbidden, invalid
	}
	j, err := parseJWS(auth[0][7:])
	if err != nil || j.Header.Kid != a.KeyID || j.Claims.Iss != a.TeamID || !j.verifyES256(a.pub) {
		return http.StatusForbidden, invalid
	}
	iat, err := j.Claims.Iat.Int64()
	now := time.Now().Unix()
	switch {
	case err != nil || iat > now+60:
		return http.StatusForbidden, invalid
	case iat < now-3600:
		return http.StatusForbidden, "ExpiredProviderToken"
	}
	return 0, ""
}

// isJSONObject reports whether b is one valid JSON object.
func isJSONObject(b []byte) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal(b, &m) == nil && m != nil
}

// writeJSON writes v as a JSON response with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	w.Write(b)
}

// startTLS starts h on 127.0.0.1 over TLS offering only HTTP/2 in ALPN, as
// the providers do. It returns the base URL, a client that trusts the
// server's certificate, that certificate in PEM and a function that
// closes the server.
func startTLS(h http.Handler) (string, *http.Client, []byte, func()) {
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{NextProtos: []string{"h2"}}
	srv.StartTLS()
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	return srv.URL, srv.Client(), certPEM, srv.Close
}

// answer is a configured status and reason (APNs) or error code (FCM).
type answer struct {
	status int
	reason string
}

// answers holds configured answers: a FIFO of one-shot answers for any
// token, and standing answers per token.
type answers struct {
	mu      sync.Mutex
	next    []answer
	byToken map[string]answer
}

func (s *answers) set(token string, status int, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byToken == nil {
		s.byToken = make(map[string]answer)
	}
	s.byToken[token] = answer{status, reason}
}

func (s *answers) push(n int, status int, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.next = append(s.next, answer{status, reason})
	}
}

// take returns the answer for a request for token, consuming a one-shot
// answer if one is pending.
func (s *answers) take(token string) (answer, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.next) > 0 {
		a := s.next[0]
		s.next = s.next[1:]
		return a, true
	}
	a, ok := s.byToken[token]
	return a, ok
}

// recorder keeps every request in arrival order and lets a test wait for
// the next one it has not seen.
type recorder[T any] struct {
	mu    sync.Mutex
	items []T
	read  int           // items[:read] were returned by next
	added chan struct{} // closed by the next add; nil if nobody waits
}

func (r *recorder[T]) add(v T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.items = append(r.items, v)
	if r.added != nil {
		close(r.added)
		r.added = nil
	}
}

func (r *recorder[T]) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.items)
}

func (r *recorder[T]) next(timeout time.Duration, what string) (T, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		if r.read < len(r.items) {
			v := r.items[r.read]
			r.read++
			r.mu.Unlock()
			return v, nil
		}
		if r.added == nil {
			r.added = make(chan struct{})
		}
		added := r.added
		seen := len(r.items)
		r.mu.Unlock()
		select {
		case <-added:
		case <-deadline.C:
			var zero T
			return zero, fmt.Errorf("no new %s request within %v (%d received, all returned by earlier calls)", what, timeout, seen)
		}
	}
}
