// Package pushtest runs local push-provider endpoints for tests of package
// push: an APNs provider API (NewAPNs) and the FCM HTTP v1 API with the
// Google OAuth 2.0 token endpoint its service account uses (NewFCM). Like
// net/http/httptest, it is for tests only.
//
// They are not mocks. Each listens on 127.0.0.1 with HTTP/2 over TLS,
// speaks the provider's real wire protocol, and checks credentials the way
// the provider does: APNs verifies the ES256 provider token against a .p8
// key it generated, and FCM issues access tokens only for an RS256 JWT
// signed with the service-account key it generated, then accepts only
// those tokens. So the real clients, github.com/sideshow/apns2 and
// firebase.google.com/go/v4/messaging, run unchanged against them.
//
// Tests choose provider answers with Answer (per device token) and
// AnswerNext (the next n requests), and read what arrived with Next, which
// waits on a channel with a deadline, and Count.
//
// DESIGN.md, "Testing": APNs/FCM endpoints that speak the providers' real
// HTTP/2 protocols locally, with the JWTs checked. The APNs behaviour
// follows Apple's "Sending notification requests to APNs" and "Handling
// notification responses from APNs"; the FCM behaviour follows the FCM HTTP
// v1 reference (projects.messages.send, FcmError) and Google's "Using OAuth
// 2.0 for Server to Server Applications".
//
// Wiring the Firebase client to an FCM server:
//
//	f := pushtest.NewFCM(t)
//	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, f.Client)
//	creds, err := google.CredentialsFromJSONWithType(ctx, f.Credentials, google.ServiceAccount,
//		"https://www.googleapis.com/auth/firebase.messaging")
//	hc := &http.Client{Transport: &oauth2.Transport{Source: creds.TokenSource, Base: f.Client.Transport}}
//	app, err := firebase.NewApp(ctx, &firebase.Config{ProjectID: f.ProjectID},
//		option.WithHTTPClient(hc), option.WithEndpoint(f.URL+"/v1"))
//	client, err := app.Messaging(ctx)
package pushtest
