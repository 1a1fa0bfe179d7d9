package push

import (
	"context"
	"time"
)

// outcome is what one attempt to push came to.
type outcome uint8

const (
	sent   outcome = iota // the provider accepted the push
	dead                  // the token is dead: delete it
	retry                 // throttled or a provider/network error: try again later
	failed                // refused for another reason: give up
)

// result is one attempt's outcome, the provider's reason (a bounded label)
// and the provider's hint for when to retry.
type result struct {
	outcome outcome
	reason  string
	after   time.Duration
}

// sender delivers one push through a provider. expires is when the
// provider may drop a push it could not deliver (APNs takes the time), ttl
// the same as a duration from now (FCM takes that).
type sender interface {
	send(ctx context.Context, t Token, expires time.Time, ttl time.Duration) result
	close()
}
