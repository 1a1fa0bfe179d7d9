package push

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"time"

	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/token"
)

// APNsPayload is the body of every APNs push (spec/protocol.md, "Push"):
// a generic alert the app's notification service extension replaces after
// it fetches and decrypts its mail. It is the same bytes for every push.
var APNsPayload = []byte(`{"aps":{"alert":{"loc-key":"PIGEONHOLE_NEW_MESSAGE"},"mutable-content":1,"sound":"default"}}`)

// APNsCollapseID is the apns-collapse-id of every push: the device shows
// one notification however many pushes arrive.
const APNsCollapseID = "pigeonhole"

// APNsConfig configures APNs token-based authentication.
type APNsConfig struct {
	// AuthKey is the contents of the .p8 signing key from the Apple
	// developer account.
	AuthKey []byte
	// KeyID is the key's 10-character id; TeamID the 10-character team id.
	KeyID, TeamID string
	// Topics, when not empty, are the only bundle ids a device may
	// register a token for.
	Topics []string
	// Host replaces both APNs hosts and HTTPClient the HTTP/2 client; for
	// tests against a local endpoint.
	Host       string
	HTTPClient *http.Client
}

var appleIDRE = regexp.MustCompile(`^[A-Z0-9]{10}$`)

// check validates the configuration and signs a provider token once, so a
// broken key is a startup error.
func (c *APNsConfig) check() (*token.Token, error) {
	if !appleIDRE.MatchString(c.KeyID) {
		return nil, fmt.Errorf("push: APNs key id %q is not 10 upper-case letters and digits", c.KeyID)
	}
	if !appleIDRE.MatchString(c.TeamID) {
		return nil, fmt.Errorf("push: APNs team id %q is not 10 upper-case letters and digits", c.TeamID)
	}
	key, err := token.AuthKeyFromBytes(c.AuthKey)
	if err != nil {
		return nil, fmt.Errorf("push: APNs auth key (.p8): %w", err)
	}
	tok := &token.Token{AuthKey: key, KeyID: c.KeyID, TeamID: c.TeamID}
	if _, err := tok.Generate(); err != nil {
		return nil, fmt.Errorf("push: APNs auth key (.p8) cannot sign: %w", err)
	}
	for _, t := range c.Topics {
		if !topicRE.MatchString(t) {
			return nil, fmt.Errorf("push: APNs topic %q is not a bundle id", t)
		}
	}
	return tok, nil
}

type apnsSender struct {
	prod, dev *apns2.Client
}

func newAPNs(c *APNsConfig) (*apnsSender, error) {
	tok, err := c.check()
	if err != nil {
		return nil, err
	}
	prod := apns2.NewTokenClient(tok).Production()
	dev := apns2.NewTokenClient(tok).Development()
	for _, cl := range []*apns2.Client{prod, dev} {
		if c.Host != "" {
			cl.Host = c.Host
		}
		if c.HTTPClient != nil {
			cl.HTTPClient = c.HTTPClient
		}
	}
	return &apnsSender{prod: prod, dev: dev}, nil
}

func (c *APNsConfig) allows(topic string) bool {
	return len(c.Topics) == 0 || slices.Contains(c.Topics, topic)
}

func (a *apnsSender) send(ctx context.Context, t Token, expires time.Time, _ time.Duration) result {
	cl := a.prod
	if t.Sandbox {
		cl = a.dev
	}
	n := &apns2.Notification{
		DeviceToken: t.Value,
		Topic:       t.Topic,
		Payload:     APNsPayload,
		PushType:    apns2.PushTypeAlert,
		Priority:    apns2.PriorityHigh,
		CollapseID:  APNsCollapseID,
		Expiration:  expires,
	}
	resp, err := cl.PushWithContext(ctx, n)
	if err != nil {
		return result{outcome: retry, reason: "network"}
	}
	return apnsResult(resp.StatusCode, resp.Reason)
}

// apnsResult classifies an APNs answer as Apple documents it ("Handling
// notification responses from APNs").
func apnsResult(status int, reason string) result {
	switch {
	case status == http.StatusOK:
		return result{outcome: sent}
	case status == http.StatusGone, reason == apns2.ReasonUnregistered, reason == apns2.ReasonExpiredToken,
		reason == apns2.ReasonBadDeviceToken, reason == apns2.ReasonDeviceTokenNotForTopic:
		return result{outcome: dead, reason: apnsReason(reason, status)}
	case status == http.StatusTooManyRequests, status >= 500:
		return result{outcome: retry, reason: apnsReason(reason, status)}
	}
	return result{outcome: failed, reason: apnsReason(reason, status)}
}

// apnsReasons are the reasons Apple documents; other strings are "other"
// so the metric's labels stay bounded.
var apnsReasons = []string{
	apns2.ReasonBadCollapseID, apns2.ReasonBadDeviceToken, apns2.ReasonBadExpirationDate,
	apns2.ReasonBadMessageID, apns2.ReasonBadPriority, apns2.ReasonBadTopic,
	apns2.ReasonDeviceTokenNotForTopic, apns2.ReasonDuplicateHeaders, apns2.ReasonIdleTimeout,
	apns2.ReasonInvalidPushType, apns2.ReasonMissingDeviceToken, apns2.ReasonMissingTopic,
	apns2.ReasonPayloadEmpty, apns2.ReasonTopicDisallowed, apns2.ReasonBadCertificate,
	apns2.ReasonBadCertificateEnvironment, apns2.ReasonExpiredProviderToken, apns2.ReasonForbidden,
	apns2.ReasonInvalidProviderToken, apns2.ReasonMissingProviderToken, apns2.ReasonBadPath,
	apns2.ReasonMethodNotAllowed, apns2.ReasonExpiredToken, apns2.ReasonUnregistered,
	apns2.ReasonPayloadTooLarge, apns2.ReasonTooManyProviderTokenUpdates, apns2.ReasonTooManyRequests,
	apns2.ReasonInternalServerError, apns2.ReasonServiceUnavailable, apns2.ReasonShutdown,
}

func apnsReason(reason string, status int) string {
	if slices.Contains(apnsReasons, reason) {
		return reason
	}
	if reason == "" {
		return fmt.Sprintf("HTTP %dxx", status/100)
	}
	return "other"
}

func (a *apnsSender) close() {
	for _, cl := range []*apns2.Client{a.prod, a.dev} {
		if cc, ok := cl.HTTPClient.Transport.(interface{ CloseIdleConnections() }); ok {
			cc.CloseIdleConnections()
		}
	}
}
