package push

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/errorutils"
	"firebase.google.com/go/v4/messaging"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"google.golang.org/api/option"
)

// FCMData is the data of every FCM push (spec/protocol.md, "Push"): the
// same constant for every push, so the app's messaging service wakes and
// fetches.
var FCMData = map[string]string{"pigeonhole": "wake"}

// FCMCollapseKey is the Android collapse key of every push.
const FCMCollapseKey = "pigeonhole"

const fcmScope = "https://www.googleapis.com/auth/firebase.messaging"

// FCMConfig configures Firebase Cloud Messaging (HTTP v1 API).
type FCMConfig struct {
	// Credentials is the contents of the Firebase project's service
	// account JSON key file.
	Credentials []byte
	// Endpoint replaces https://fcm.googleapis.com/v1 and HTTPClient is the
	// base client for both the OAuth token and the sends; for tests
	// against a local endpoint.
	Endpoint   string
	HTTPClient *http.Client
}

// serviceAccount is the part of a service account key file that is
// checked at startup.
type serviceAccount struct {
	Type         string `json:"type"`
	ProjectID    string `json:"project_id"`
	PrivateKeyID string `json:"private_key_id"`
	PrivateKey   string `json:"private_key"`
	ClientEmail  string `json:"client_email"`
	TokenURI     string `json:"token_uri"`
}

// check parses the service account file and its private key, so a broken
// file is a startup error.
func (c *FCMConfig) check() (*serviceAccount, error) {
	var sa serviceAccount
	if err := json.Unmarshal(c.Credentials, &sa); err != nil {
		return nil, fmt.Errorf("push: FCM service account file is not JSON: %w", err)
	}
	if sa.Type != "service_account" {
		return nil, fmt.Errorf("push: FCM credentials are of type %q, want a service account key file", sa.Type)
	}
	if sa.ProjectID == "" || sa.ClientEmail == "" || sa.PrivateKeyID == "" {
		return nil, errors.New("push: FCM service account file lacks project_id, client_email or private_key_id")
	}
	block, _ := pem.Decode([]byte(sa.PrivateKey))
	if block == nil {
		return nil, errors.New("push: FCM service account private_key is not PEM")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		if key, err = x509.ParsePKCS1PrivateKey(block.Bytes); err != nil {
			return nil, fmt.Errorf("push: FCM service account private_key: %w", err)
		}
	}
	if _, ok := key.(*rsa.PrivateKey); !ok {
		return nil, errors.New("push: FCM service account private_key is not an RSA key")
	}
	return &sa, nil
}

type fcmSender struct {
	client *messaging.Client
	base   *http.Client
}

func newFCM(ctx context.Context, c *FCMConfig) (*fcmSender, error) {
	sa, err := c.check()
	if err != nil {
		return nil, err
	}
	jc, err := google.JWTConfigFromJSON(c.Credentials, fcmScope)
	if err != nil {
		return nil, fmt.Errorf("push: FCM service account file: %w", err)
	}
	base := c.HTTPClient
	if base == nil {
		base = &http.Client{Timeout: 30 * time.Second}
	}
	// The OAuth token requests go through base too; the context only
	// carries the client (oauth2.HTTPClient), it is never cancelled.
	ts := jc.TokenSource(context.WithValue(context.Background(), oauth2.HTTPClient, base))
	hc := &http.Client{Transport: &oauth2.Transport{Source: ts, Base: base.Transport}, Timeout: base.Timeout}
	opts := []option.ClientOption{option.WithHTTPClient(hc)}
	if c.Endpoint != "" {
		opts = append(opts, option.WithEndpoint(c.Endpoint))
	}
	app, err := firebase.NewApp(ctx, &firebase.Config{ProjectID: sa.ProjectID}, opts...)
	if err != nil {
		return nil, fmt.Errorf("push: FCM: %w", err)
	}
	mc, err := app.Messaging(ctx)
	if err != nil {
		return nil, fmt.Errorf("push: FCM: %w", err)
	}
	return &fcmSender{client: mc, base: base}, nil
}

// fcmMessage is the message of every FCM push, to t.
func fcmMessage(t Token, ttl time.Duration) *messaging.Message {
	return &messaging.Message{
		Token: t.Value,
		Data:  FCMData,
		Android: &messaging.AndroidConfig{
			CollapseKey: FCMCollapseKey,
			Priority:    "high",
			TTL:         &ttl,
		},
	}
}

func (f *fcmSender) send(ctx context.Context, t Token, _ time.Time, ttl time.Duration) result {
	_, err := f.client.Send(ctx, fcmMessage(t, ttl))
	if err == nil {
		return result{outcome: sent}
	}
	return fcmResult(err)
}

// fcmResult classifies an FCM error as Firebase documents it (FCM HTTP v1
// ErrorCode): UNREGISTERED and INVALID_ARGUMENT (the message is constant
// and valid, and its TTL within FCM's limit, so it is the token) mean the
// token is dead; QUOTA_EXCEEDED, UNAVAILABLE and INTERNAL are retried.
// SENDER_ID_MISMATCH is also what every token answers when the relay has
// the wrong project's credentials, so it is counted, not acted on.
func fcmResult(err error) result {
	var oe *oauth2.RetrieveError
	if errors.As(err, &oe) {
		// The service account's key was refused: the operator's problem.
		return result{outcome: failed, reason: "OAUTH_TOKEN"}
	}
	var after time.Duration
	if resp := errorutils.HTTPResponse(err); resp != nil {
		if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && s > 0 {
			after = time.Duration(s) * time.Second
		}
	}
	switch {
	case messaging.IsUnregistered(err):
		return result{outcome: dead, reason: "UNREGISTERED"}
	case messaging.IsInvalidArgument(err):
		return result{outcome: dead, reason: "INVALID_ARGUMENT"}
	case messaging.IsSenderIDMismatch(err):
		return result{outcome: failed, reason: "SENDER_ID_MISMATCH"}
	case messaging.IsQuotaExceeded(err):
		return result{outcome: retry, reason: "QUOTA_EXCEEDED", after: after}
	case messaging.IsUnavailable(err):
		return result{outcome: retry, reason: "UNAVAILABLE", after: after}
	case messaging.IsInternal(err):
		return result{outcome: retry, reason: "INTERNAL", after: after}
	case messaging.IsThirdPartyAuthError(err):
		return result{outcome: failed, reason: "THIRD_PARTY_AUTH_ERROR"}
	case errorutils.IsUnauthenticated(err):
		return result{outcome: failed, reason: "UNAUTHENTICATED"}
	case errorutils.IsPermissionDenied(err):
		// A wrong project id or a service account without the right:
		// the operator's problem, never a reason to drop the token.
		return result{outcome: failed, reason: "PERMISSION_DENIED"}
	case errorutils.HTTPResponse(err) == nil:
		// No answer at all: the network, the OAuth token endpoint or a
		// deadline.
		return result{outcome: retry, reason: "network"}
	}
	return result{outcome: failed, reason: "other"}
}

func (f *fcmSender) close() {
	if cc, ok := f.base.Transport.(interface{ CloseIdleConnections() }); ok {
		cc.CloseIdleConnections()
	}
}
