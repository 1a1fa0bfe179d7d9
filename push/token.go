package push

import (
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
)

// Provider is a push service.
type Provider uint8

// Providers. The zero value is no provider.
const (
	APNs Provider = 1 // Apple Push Notification service
	FCM  Provider = 2 // Firebase Cloud Messaging
)

// String returns "apns" or "fcm", the label used in metrics and logs.
func (p Provider) String() string {
	switch p {
	case APNs:
		return "apns"
	case FCM:
		return "fcm"
	}
	return fmt.Sprintf("provider(%d)", uint8(p))
}

// Token is a device's push token.
type Token struct {
	Provider Provider
	// Value is the APNs device token in lower-case hex, or the FCM
	// registration token.
	Value string
	// Topic is the app's bundle id (APNs only).
	Topic string
	// Sandbox selects the APNs development environment (APNs only).
	Sandbox bool
}

// Limits on token fields. APNs device tokens are 32 bytes today; Apple
// says they may grow, so up to 100 bytes are accepted.
const (
	maxAPNsTokenBytes = 100
	maxFCMTokenBytes  = 4096
	maxTopicBytes     = 255
)

var (
	// ErrInvalidToken is returned for a token that is malformed or too
	// long.
	ErrInvalidToken = errors.New("push: invalid token")
	// ErrNoToken is returned when a device has no token.
	ErrNoToken = errors.New("push: no token for this device")
	// ErrProviderOff is returned when a token names a provider the relay
	// has no credentials for, or an APNs topic it does not serve.
	ErrProviderOff = errors.New("push: provider not configured")
)

var (
	fcmTokenRE = regexp.MustCompile(`^[A-Za-z0-9_:\-.]+$`)
	topicRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.\-_]*$`)
)

// APNsToken makes an APNs token from the raw device token bytes.
func APNsToken(raw []byte, topic string, sandbox bool) Token {
	return Token{Provider: APNs, Value: hex.EncodeToString(raw), Topic: topic, Sandbox: sandbox}
}

// FCMToken makes an FCM token from a registration token.
func FCMToken(reg string) Token {
	return Token{Provider: FCM, Value: reg}
}

// Validate checks a token's shape and size; the error wraps
// ErrInvalidToken.
func (t Token) Validate() error {
	switch t.Provider {
	case APNs:
		raw, err := hex.DecodeString(t.Value)
		if err != nil || len(raw) == 0 || len(raw) > maxAPNsTokenBytes {
			return fmt.Errorf("%w: an APNs device token is 1 to %d bytes", ErrInvalidToken, maxAPNsTokenBytes)
		}
		if len(t.Topic) == 0 || len(t.Topic) > maxTopicBytes || !topicRE.MatchString(t.Topic) {
			return fmt.Errorf("%w: an APNs topic is an app bundle id of at most %d characters", ErrInvalidToken, maxTopicBytes)
		}
	case FCM:
		if len(t.Value) == 0 || len(t.Value) > maxFCMTokenBytes || !fcmTokenRE.MatchString(t.Value) {
			return fmt.Errorf("%w: an FCM registration token is 1 to %d URL-safe characters", ErrInvalidToken, maxFCMTokenBytes)
		}
		if t.Topic != "" || t.Sandbox {
			return fmt.Errorf("%w: an FCM token has no topic or sandbox", ErrInvalidToken)
		}
	default:
		return fmt.Errorf("%w: unknown provider", ErrInvalidToken)
	}
	return nil
}

// Redacted is a form of the token safe for logs: the provider, its first
// four characters and its length.
func (t Token) Redacted() string {
	v := t.Value
	if len(v) > 4 {
		v = v[:4]
	}
	return fmt.Sprintf("%s:%s…(%d)", t.Provider, v, len(t.Value))
}

// String is Redacted, so a token passed to a logger by mistake does not
// leak.
func (t Token) String() string { return t.Redacted() }

// Device names a device: its account id and device id. Push treats it as
// an opaque key.
type Device struct {
	Account [16]byte
	ID      uint32
}

// LogValue makes slog print the redacted form whatever the handler.
func (t Token) LogValue() slog.Value { return slog.StringValue(t.Redacted()) }

// GoString is Redacted too, so %#v does not leak the token either.
func (t Token) GoString() string { return "push.Token(" + t.Redacted() + ")" }
