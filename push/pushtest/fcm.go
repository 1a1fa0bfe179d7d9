package pushtest

import (
	"crypto/rsa"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Google OAuth 2.0 and FCM constants.
const (
	jwtBearerGrant = "urn:ietf:params:oauth:grant-type:jwt-bearer" // RFC 7523
	scopeMessaging = "https://www.googleapis.com/auth/firebase.messaging"
	scopeCloud     = "https://www.googleapis.com/auth/cloud-platform"
	fcmErrorType   = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
	tokenLifetime  = time.Hour
)

// FCM is a local Firebase Cloud Messaging HTTP v1 endpoint together with
// the Google OAuth 2.0 token endpoint its service account gets access
// tokens from.
//
// POST URL/token is the JWT-bearer grant (RFC 7523) as Google runs it: a
// form with grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer and
// assertion=<JWT>. The JWT must be RS256 and verify with the service
// account's key, with header kid == private_key_id, claims iss ==
// client_email, aud == token_uri, a non-empty scope, and iat and exp no
// more than an hour apart around now. A bad grant gets 400
// {"error":"invalid_grant","error_description":"..."} (or
// unsupported_grant_type, invalid_request, invalid_scope); a good one gets
// {"access_token":"ya29...","expires_in":3600,"token_type":"Bearer"}.
//
// POST URL/v1/projects/<project>/messages:send is checked in this order:
//
//	no or unknown/expired bearer token      401 UNAUTHENTICATED
//	token without the firebase.messaging
//	or cloud-platform scope                 403 PERMISSION_DENIED
//	<project> not ProjectID                 403 PERMISSION_DENIED, no FCM error code
//	                                        (the IAM error Google gives, not
//	                                        SENDER_ID_MISMATCH, which is about a
//	                                        registration token)
//	body not {"message":{...}} with exactly
//	one of token, topic, condition          400 INVALID_ARGUMENT
//	an AnswerNext answer pending            that answer
//	an Answer set for message.token         that answer
//	otherwise                               200 {"name":"projects/<p>/messages/<id>"}
//
// Errors use Google's format, with the FCM error code in details:
//
//	{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND",
//	  "details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}
type FCM struct {
	// URL is "https://127.0.0.1:PORT". The messaging endpoint is URL+"/v1"
	// and the token endpoint URL+"/token".
	URL string
	// Client trusts the server's certificate and speaks HTTP/2. It carries
	// no credentials: wrap its Transport in an oauth2.Transport.
	Client *http.Client
	// ProjectID is the Firebase project the service account belongs to.
	ProjectID string
	// Credentials is the contents of a service-account JSON file for this
	// server, with a fresh RSA 2048 key and token_uri set to URL+"/token".
	Credentials []byte

	pub      *rsa.PublicKey
	keyID    string
	email    string
	tokenURI string

	mu     sync.Mutex
	grants map[string]grant // by access token
	issued int

	answers answers
	log     recorder[FCMRequest]
}

// grant is an access token the token endpoint issued.
type grant struct {
	expires time.Time
	scopes  []string
}

// FCMRequest is one messages:send request the FCM server received, and
// its answer.
type FCMRequest struct {
	// Token is message.token from the body, "" if there is none.
	Token string
	// Header holds the request headers.
	Header http.Header
	// Body is the exact request body.
	Body []byte
	// Status is the HTTP status the server answered.
	Status int
	// Code is the FCM error code answered (such as "UNREGISTERED"), ""
	// on success and on errors that carry none.
	Code string
}

// NewFCM starts an FCM endpoint and its token endpoint with a fresh
// service account. It is closed when the test ends.
func NewFCM(t testing.TB) *FCM {
	t.Helper()
	key, keyPEM, err := newRSAKey()
	if err != nil {
		t.Fatalf("pushtest: generating the service-account key: %v", err)
	}
	f := &FCM{
		ProjectID: "pushtest-" + randomHex(3),
		pub:       &key.PublicKey,
		keyID:     randomHex(20),
		grants:    make(map[string]grant),
	}
	f.email = "firebase-adminsdk-" + strings.ToLower(randomID(5)) + "@" + f.ProjectID + ".iam.gserviceaccount.com"
	mux := http.NewServeMux()
	mux.HandleFunc("/token", f.serveToken)
	mux.HandleFunc("/", f.serveMessaging)
	var closeSrv func()
	f.URL, f.Client, _, closeSrv = startTLS(mux)
	t.Cleanup(closeSrv)
	f.tokenURI = f.URL + "/token"
	f.Credentials, err = json.MarshalIndent(map[string]string{
		"type":                        "service_account",
		"project_id":                  f.ProjectID,
		"private_key_id":              f.keyID,
		"private_key":                 string(keyPEM),
		"client_email":                f.email,
		"client_id":                   randomDigits(21),
		"auth_uri":                    f.URL + "/o/oauth2/auth",
		"token_uri":                   f.tokenURI,
		"auth_provider_x509_cert_url": f.URL + "/oauth2/v1/certs",
		"client_x509_cert_url":        f.URL + "/robot/v1/metadata/x509/" + f.email,
		"universe_domain":             "googleapis.com",
	}, "", "  ")
	if err != nil {
		t.Fatalf("pushtest: %v", err)
	}
	return f
}

// Answer makes every later send to the registration token get the HTTP
// status and FCM error code, such as 404 "UNREGISTERED", 400
// "INVALID_ARGUMENT" or 403 "SENDER_ID_MISMATCH". It applies only to
// requests that pass every check.
func (f *FCM) Answer(token string, status int, fcmCode string) {
	f.answers.set(token, status, fcmCode)
}

// AnswerNext makes the next n sends, to any token, get the HTTP status and
// FCM error code, such as 429 "QUOTA_EXCEEDED", 503 "UNAVAILABLE" or 500
// "INTERNAL". It takes precedence over Answer and queues after earlier
// AnswerNext calls. The Firebase client retries a 503 by itself, so one
// failed Send can use up several answers.
func (f *FCM) AnswerNext(n int, status int, fcmCode string) {
	f.answers.push(n, status, fcmCode)
}

// Next returns the next messages:send request received, in arrival order
// and including rejected ones, waiting up to timeout for it. It fails the
// test if none comes.
func (f *FCM) Next(t testing.TB, timeout time.Duration) FCMRequest {
	t.Helper()
	r, err := f.log.next(timeout, "FCM messages:send")
	if err != nil {
		t.Fatalf("pushtest: %v", err)
	}
	return r
}

// Count returns how many messages:send requests the server has received.
func (f *FCM) Count() int {
	return f.log.count()
}

// TokenRequests returns how many access tokens the token endpoint has
// issued.
func (f *FCM) TokenRequests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.issued
}

// serveToken is the OAuth 2.0 token endpoint.
func (f *FCM) serveToken(w http.ResponseWriter, r *http.Request) {
	oauthError := func(code, desc string) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": code, "error_description": desc})
	}
	if r.Method != http.MethodPost {
		oauthError("invalid_request", "Token requests must use POST.")
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthError("invalid_request", err.Error())
		return
	}
	if g := r.PostForm.Get("grant_type"); g != jwtBearerGrant {
		oauthError("unsupported_grant_type", "Invalid grant_type: "+g)
		return
	}
	assertion := r.PostForm.Get("assertion")
	if assertion == "" {
		oauthError("invalid_request", "Missing required parameter: assertion")
		return
	}
	j, err := parseJWS(assertion)
	if err != nil {
		oauthError("invalid_grant", "Invalid JWT: "+err.Error())
		return
	}
	if j.Header.Kid != f.keyID || !j.verifyRS256(f.pub) {
		oauthError("invalid_grant", "Invalid JWT Signature.")
		return
	}
	if j.Claims.Iss != f.email {
		oauthError("invalid_grant", "Invalid JWT: unknown issuer "+j.Claims.Iss)
		return
	}
	if j.Claims.Aud != f.tokenURI {
		oauthError("invalid_grant", "Invalid JWT: Failed audience check. The right audience is "+f.tokenURI)
		return
	}
	iat, err1 := j.Claims.Iat.Int64()
	exp, err2 := j.Claims.Exp.Int64()
	now := time.Now().Unix()
	if err1 != nil || err2 != nil || exp <= iat || exp-iat > 3600 || iat > now+60 || exp < now {
		oauthError("invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.")
		return
	}
	scopes := strings.Fields(j.Claims.Scope)
	if len(scopes) == 0 {
		oauthError("invalid_scope", "Empty or missing scope not allowed.")
		return
	}
	token := "ya29.pushtest-" + randomHex(32)
	f.mu.Lock()
	f.grants[token] = grant{expires: time.Now().Add(tokenLifetime), scopes: scopes}
	f.issued++
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": token,
		"expires_in":   int(tokenLifetime / time.Second),
		"token_type":   "Bearer",
	})
}

// serveMessaging is the FCM HTTP v1 API.
func (f *FCM) serveMessaging(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1/projects/")
	project, method, _ := strings.Cut(rest, "/")
	if !ok || method != "messages:send" || r.Method != http.MethodPost {
		writeGoogleError(w, http.StatusNotFound, "", "Requested entity was not found.")
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	var req sendRequest
	bodyErr := json.Unmarshal(body, &req)
	token := ""
	if bodyErr == nil && req.Message != nil {
		token = req.Message.Token
	}

	status, code, msg := f.check(r, project, &req, bodyErr)
	f.log.add(FCMRequest{
		Token:  token,
		Header: r.Header.Clone(),
		Body:   body,
		Status: status,
		Code:   code,
	})
	if status != http.StatusOK {
		if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="https://accounts.google.com/"`)
		}
		writeGoogleError(w, status, code, msg)
		return
	}
	id := "0:" + randomDigits(16) + "%" + randomHex(8)
	if req.ValidateOnly || req.ValidateOnly2 {
		id = "fake_message_id"
	}
	writeJSON(w, http.StatusOK, map[string]string{"name": "projects/" + project + "/messages/" + id})
}

// sendRequest is the part of a messages:send body the server reads.
type sendRequest struct {
	ValidateOnly  bool `json:"validate_only"`
	ValidateOnly2 bool `json:"validateOnly"` // proto3 JSON accepts both spellings
	Message       *struct {
		Token     string `json:"token"`
		Topic     string `json:"topic"`
		Condition string `json:"condition"`
	} `json:"message"`
}

// check decides the answer to one messages:send request, as listed on
// FCM. It returns the status, the FCM error code and the error message.
func (f *FCM) check(r *http.Request, project string, req *sendRequest, bodyErr error) (int, string, string) {
	const seeCreds = " Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return http.StatusUnauthorized, "", "Request is missing required authentication credential." + seeCreds
	}
	bearer, ok := strings.CutPrefix(auth, "Bearer ")
	f.mu.Lock()
	g, known := f.grants[bearer]
	f.mu.Unlock()
	if !ok || !known || time.Now().After(g.expires) {
		return http.StatusUnauthorized, "", "Request had invalid authentication credentials." + seeCreds
	}
	if !slices.Contains(g.scopes, scopeMessaging) && !slices.Contains(g.scopes, scopeCloud) {
		return http.StatusForbidden, "", "Request had insufficient authentication scopes."
	}
	if project != f.ProjectID {
		return http.StatusForbidden, "", "Permission 'cloudmessaging.messages.create' denied on resource '//cloudresourcemanager.googleapis.com/projects/" + project + "' (or it may not exist)."
	}
	switch {
	case bodyErr != nil:
		return http.StatusBadRequest, "INVALID_ARGUMENT", "Invalid JSON payload received. " + bodyErr.Error()
	case req.Message == nil:
		return http.StatusBadRequest, "INVALID_ARGUMENT", "Request contains an invalid argument."
	}
	m := req.Message
	targets := 0
	for _, s := range []string{m.Token, m.Topic, m.Condition} {
		if s != "" {
			targets++
		}
	}
	switch targets {
	case 0:
		return http.StatusBadRequest, "INVALID_ARGUMENT", "Recipient of the message is not set."
	case 1:
	default:
		return http.StatusBadRequest, "INVALID_ARGUMENT", "Exactly one of token, topic or condition must be set."
	}
	if a, ok := f.answers.take(m.Token); ok {
		return a.status, a.reason, fcmMessage(a.status, a.reason)
	}
	return http.StatusOK, "", ""
}

// fcmMessage is the error message FCM sends with an error code.
func fcmMessage(status int, code string) string {
	switch code {
	case "UNREGISTERED":
		return "Requested entity was not found."
	case "INVALID_ARGUMENT":
		return "Request contains an invalid argument."
	case "SENDER_ID_MISMATCH":
		return "SenderId mismatch"
	case "QUOTA_EXCEEDED":
		return "Quota exceeded for the message rate."
	case "UNAVAILABLE":
		return "The service is currently unavailable."
	case "INTERNAL":
		return "Internal error encountered."
	case "THIRD_PARTY_AUTH_ERROR":
		return "Auth error from APNS or Web Push Service"
	}
	return http.StatusText(status)
}

// canonicalStatus maps an HTTP status to the google.rpc.Code name Google
// APIs send with it.
func canonicalStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "INVALID_ARGUMENT"
	case http.StatusUnauthorized:
		return "UNAUTHENTICATED"
	case http.StatusForbidden:
		return "PERMISSION_DENIED"
	case http.StatusNotFound:
		return "NOT_FOUND"
	case http.StatusConflict:
		return "ABORTED"
	case http.StatusTooManyRequests:
		return "RESOURCE_EXHAUSTED"
	case http.StatusInternalServerError:
		return "INTERNAL"
	case http.StatusNotImplemented:
		return "UNIMPLEMENTED"
	case http.StatusServiceUnavailable:
		return "UNAVAILABLE"
	case http.StatusGatewayTimeout:
		return "DEADLINE_EXCEEDED"
	}
	return "UNKNOWN"
}

// writeGoogleError writes a Google API error, with an FcmError detail if
// fcmCode is not "".
func writeGoogleError(w http.ResponseWriter, status int, fcmCode, msg string) {
	type detail struct {
		Type      string `json:"@type"`
		ErrorCode string `json:"errorCode"`
	}
	var e struct {
		Error struct {
			Code    int      `json:"code"`
			Message string   `json:"message"`
			Status  string   `json:"status"`
			Details []detail `json:"details,omitempty"`
		} `json:"error"`
	}
	e.Error.Code = status
	e.Error.Message = msg
	e.Error.Status = canonicalStatus(status)
	if fcmCode != "" {
		e.Error.Details = []detail{{fcmErrorType, fcmCode}}
	}
	writeJSON(w, status, e)
}
