package relay_test

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pigeonhole/pigeonhole/relay/client"
)

// goroutinesIn counts the goroutines whose stack holds fn (a function's
// full name followed by "("), or, for a name ending in ".", any method
// of that type, except those also in but.
func goroutinesIn(fn, but string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		name := fn
		if !strings.HasSuffix(fn, ".") {
			name += "("
		}
		if strings.Contains(g, name) && (but == "" || !strings.Contains(g, but+"(")) {
			count++
		}
	}
	return count
}

// waitGoroutines waits until exactly n goroutines are in fn (and not in
// but).
func waitGoroutines(t *testing.T, fn, but string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		got := goroutinesIn(fn, but)
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines in %s, want %d", got, fn, n)
		}
		<-tick.C
	}
}

// TestIdleSessionHasNoDeliveryGoroutine: a session with nothing to
// deliver has one relay goroutine of its own, its ack reader; delivery
// runs only while there is something to write, and starts again for an
// append, for an ack that makes room, and after an idle spell.
func TestIdleSessionHasNoDeliveryGoroutine(t *testing.T) {
	r := startRelay(t, testConfig())
	const n = 8
	sender := r.register(t, 5)
	sc := r.session(t, sender, 0)
	var devs []*device
	var conns []*client.Conn
	for range n {
		d := r.register(t, 5)
		c := r.session(t, d, 1) // a window of 1: an ack makes the room
		nextKind(t, c, client.EventDrained)
		devs, conns = append(devs, d), append(conns, c)
	}
	// Goroutines in a session's methods other than the ack reader are
	// delivering.
	const sess = "github.com/pigeonhole/pigeonhole/relay.(*session)."
	const reader = sess + "readAcks"
	waitGoroutines(t, sess, reader, 0)
	waitGoroutines(t, reader, "", n+1) // the sender's session (window 0) reads acks too

	// Two messages for one device with a window of 1: the first comes on
	// the append, the second only after its ack.
	for _, body := range []string{"first", "second"} {
		if _, err := sendText(t, sc, devs[0], []uint32{1}, body); err != nil {
			t.Fatal(err)
		}
	}
	env := nextEnvelope(t, conns[0])
	if string(env.Content) != "first" {
		t.Fatalf("got %q first", env.Content)
	}
	if err := conns[0].Ack(env.Seq); err != nil {
		t.Fatal(err)
	}
	if env = nextEnvelope(t, conns[0]); string(env.Content) != "second" {
		t.Fatalf("got %q second", env.Content)
	}
	if err := conns[0].Ack(env.Seq); err != nil {
		t.Fatal(err)
	}
	waitGoroutines(t, sess, reader, 0)
	// Idle again, delivery starts again for the next append.
	if _, err := sendText(t, sc, devs[n-1], []uint32{1}, "later"); err != nil {
		t.Fatal(err)
	}
	if env = nextEnvelope(t, conns[n-1]); string(env.Content) != "later" {
		t.Fatalf("got %q", env.Content)
	}
}
