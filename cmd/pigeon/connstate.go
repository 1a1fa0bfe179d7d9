package main

import (
	"fmt"
	"time"
)

// quietFor is how long listen stays quiet about an outage it has already
// reported, so a long one gives a line now and then, not one per attempt.
const quietFor = 30 * time.Second

// report makes listen say on stderr when the relay is lost and when it
// is back: the first failed attempt of an outage, then at most one
// "still disconnected" line per quietFor, then "reconnected".
func (in *inbox) report(connected bool, reason string, wait time.Duration) {
	now := time.Now()
	switch {
	case connected:
		if !in.down.IsZero() {
			fmt.Fprintf(in.c.stderr, "pigeon: reconnected after %s\n", roundWait(time.Since(in.down)))
		}
		in.down = time.Time{}
	case wait < 0:
		// Receiving ended for good: Run returns the reason.
	case in.down.IsZero():
		in.down, in.last = now, now
		fmt.Fprintf(in.c.stderr, "pigeon: disconnected from the relay (%s), retrying in %s\n", reason, roundWait(wait))
	case now.Sub(in.last) >= quietFor:
		in.last = now
		fmt.Fprintf(in.c.stderr, "pigeon: still disconnected after %s, retrying in %s\n", roundWait(now.Sub(in.down)), roundWait(wait))
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
