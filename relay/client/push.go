package client

import (
	"context"
	"fmt"

	"github.com/pigeonhole/pigeonhole/spec"
)

// SetAPNsToken registers (or replaces) this device's APNs device token,
// as the app got it from iOS, for the app with bundle id topic; sandbox
// selects the development environment. The relay then wakes the device
// with a content-free push when mail arrives while it is not connected.
// A relay without APNs credentials refuses with PUSH_UNAVAILABLE.
func (c *Conn) SetAPNsToken(ctx context.Context, token []byte, topic string, sandbox bool) error {
	return c.setPushToken(ctx, &spec.SetPushTokenRequest{Token: &spec.SetPushTokenRequest_Apns{
		Apns: &spec.APNsToken{DeviceToken: token, Topic: topic, Sandbox: sandbox},
	}})
}

// SetFCMToken registers (or replaces) this device's Firebase Cloud
// Messaging registration token. A relay without FCM credentials refuses
// with PUSH_UNAVAILABLE.
func (c *Conn) SetFCMToken(ctx context.Context, token string) error {
	return c.setPushToken(ctx, &spec.SetPushTokenRequest{Token: &spec.SetPushTokenRequest_Fcm{
		Fcm: &spec.FCMToken{RegistrationToken: token},
	}})
}

// ClearPushToken removes this device's push token; it gets no more pushes.
func (c *Conn) ClearPushToken(ctx context.Context) error {
	return c.setPushToken(ctx, &spec.SetPushTokenRequest{})
}

func (c *Conn) setPushToken(ctx context.Context, r *spec.SetPushTokenRequest) error {
	if _, err := c.roundTrip(ctx, &spec.Request{Body: &spec.Request_SetPushToken{SetPushToken: r}}); err != nil {
		return fmt.Errorf("set push token: %w", err)
	}
	return nil
}
