package jstokens

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// transient reports whether err means that the stream has no leader at
// the moment (it is being created, or a node failed and a new leader is
// being elected): the same request succeeds a moment later.
func transient(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, errNoLeader) ||
		(errors.As(err, &apiErr) && apiErr.Code == 503)
}

// errNoLeader is a 503 status answered to a raw request.
var errNoLeader = errors.New("jstokens: the stream has no leader right now")

// retryWait is the pause between attempts at a transient failure.
const retryWait = 50 * time.Millisecond

// again calls fn until it succeeds, fails for good, or ctx ends.
func again(ctx context.Context, fn func() error) error {
	for {
		err := fn()
		if err == nil || !transient(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(retryWait):
		}
	}
}
