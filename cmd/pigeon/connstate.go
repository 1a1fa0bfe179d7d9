package main

import (
	"fmt"
	"time"

	"github.com/pigeonhole/pigeonhole/relay/client"
)

// quietFor is how long listen stays quiet about an outage it has already
// reported, so a long one gives a line now and then, not one per attempt.
const quietFor = 30 * time.Second

// reportConnection makes listen say on stderr when the relay is lost and
// when it is back: the first failed attempt of an outage, then at most
// one "still disconnected" line per quietFor, then "reconnected".
func (c *cli) reportConnection(cl *client.Client) {
	var down, last time.Time // the outage's start; the last line about it
	cl.Retrying = func(err error, wait time.Duration) {
		now := time.Now()
		switch {
		case down.IsZero():
			down, last = now, now
			fmt.Fprintf(c.stderr, "pigeon: disconnected from the relay (%v), retrying in %s\n", err, roundWait(wait))
		case now.Sub(last) >= quietFor:
			last = now
			fmt.Fprintf(c.stderr, "pigeon: still disconnected after %s, retrying in %s\n", roundWait(now.Sub(down)), roundWait(wait))
		}
	}
	cl.Reconnected = func() {
		if !down.IsZero() {
			fmt.Fprintf(c.stderr, "pigeon: reconnected after %s\n", roundWait(time.Since(down)))
		}
		down = time.Time{}
	}
}

// roundWait rounds d for people: tenths of a second below 10 s, whole
// seconds above.
func roundWait(d time.Duration) time.Duration {
	if d < 10*time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Second)
}
