package natscluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pigeonhole/pigeonhole/queue"
	"github.com/pigeonhole/pigeonhole/relay"
)

// patience bounds every wait for something that must happen (a loaded
// two-core machine runs these tests).
const patience = time.Minute

var testKey = bytes.Repeat([]byte{7}, ClusterKeySize)

func startNATS(t *testing.T) string {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(patience) {
		t.Fatal("nats server not ready")
	}
	return ns.ClientURL()
}

func connect(t *testing.T, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// counts counts rejections by kind.
type counts struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counts) add(kind string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[kind]++
}

func (c *counts) get(kind string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[kind]
}

// heard is what a relay's handlers received, by kind and address.
type heard struct {
	mu  sync.Mutex
	got map[string][]queue.Address
	ch  chan struct{}
}

func (h *heard) add(kind string, a queue.Address) {
	h.mu.Lock()
	h.got[kind] = append(h.got[kind], a)
	h.mu.Unlock()
	select {
	case h.ch <- struct{}{}:
	default:
	}
}

// wait waits until kind was heard for a, and returns every address
// heard for kind so far.
func (h *heard) wait(t *testing.T, kind string, a queue.Address) []queue.Address {
	t.Helper()
	deadline := time.After(patience)
	for {
		h.mu.Lock()
		got := append([]queue.Address(nil), h.got[kind]...)
		h.mu.Unlock()
		for _, g := range got {
			if g == a {
				return got
			}
		}
		select {
		case <-h.ch:
		case <-deadline:
			t.Fatalf("%s for the marker device never arrived", kind)
		}
	}
}

func newAddr() queue.Address {
	var a queue.Address
	rand.Read(a.Account[:])
	a.Device = 1
	return a
}

func startCluster(t *testing.T, url string, key []byte, rej *counts, h *heard) *Cluster {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	c, err := New(ctx, connect(t, url), Config{ClusterKey: key, Rejected: rej.add}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Start(ctx, relay.ClusterHandlers{
		CloseDevice: func(a queue.Address) { h.add("close", a) },
		Notify:      func(a queue.Address, _ []byte) { h.add("notify", a) },
		Offer:       func(a queue.Address, _ []byte) { h.add("offer", a) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestForgedControlDropped: someone on NATS without the cluster key
// publishes close, notify and offer messages for a victim device: with no
// tag, a wrong tag, and a genuine tag made for another device. Relay A
// drops each (and counts it); a genuine message published after them on
// the same connection arrives, so the forgeries were seen and dropped.
func TestForgedControlDropped(t *testing.T) {
	url := startNATS(t)
	rej, h := &counts{n: map[string]int{}}, &heard{got: map[string][]queue.Address{}, ch: make(chan struct{}, 1)}
	a := startCluster(t, url, testKey, rej, h)
	b := startCluster(t, url, testKey, &counts{n: map[string]int{}}, &heard{got: map[string][]queue.Address{}, ch: make(chan struct{}, 1)})
	attacker := connect(t, url)
	victim := newAddr()
	for _, kind := range []string{"close", "notify", "offer"} {
		subj := func(x queue.Address) string {
			if kind == "offer" {
				return "ph.relay." + a.ID() + ".offer." + x.Token()
			}
			return "ph.ctl." + kind + "." + x.Token()
		}
		marker := newAddr()
		data := []byte("event")
		send := func(x queue.Address, tag string) {
			m := nats.NewMsg(subj(x))
			m.Header.Set("Ph-Origin", b.ID())
			if tag != "" {
				m.Header.Set(macHeader, tag)
			}
			m.Data = data
			if err := attacker.PublishMsg(m); err != nil {
				t.Fatal(err)
			}
		}
		wrong := make([]byte, macSize)
		rand.Read(wrong)
		send(victim, "")
		send(victim, base64.RawStdEncoding.EncodeToString(wrong))
		send(victim, b.controlTag(subj(marker), b.ID(), data)) // another device's tag
		send(marker, b.controlTag(subj(marker), b.ID(), data)) // genuine
		for _, got := range h.wait(t, kind, marker) {
			if got == victim {
				t.Errorf("%s: relay A acted on a forged message", kind)
			}
		}
	}
	if n := rej.get("control"); n != 9 {
		t.Errorf("relay A counted %d rejected control messages, want 9", n)
	}
	// And the relays' own messages pass.
	m2 := newAddr()
	b.CloseDevice(m2)
	h.wait(t, "close", m2)
}

// TestForgedPresenceDropped: someone on NATS without the cluster key
// writes a presence record saying a victim device is on relay B (which
// would stop its pushes), the same with relay B's genuine record of
// another device copied onto the victim's key, and a heartbeat of a relay
// that does not exist. Relay A believes none of them.
func TestForgedPresenceDropped(t *testing.T) {
	url := startNATS(t)
	rej := &counts{n: map[string]int{}}
	h := &heard{got: map[string][]queue.Address{}, ch: make(chan struct{}, 1)}
	a := startCluster(t, url, testKey, rej, h)
	b := startCluster(t, url, testKey, &counts{n: map[string]int{}}, &heard{got: map[string][]queue.Address{}, ch: make(chan struct{}, 1)})
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	js, err := jetstream.New(connect(t, url))
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, "PIGEONHOLE_PRESENCE")
	if err != nil {
		t.Fatal(err)
	}
	// waitSeen waits until A sees a genuine session of marker on B: the
	// bucket's updates reach A in order, so what was written before has
	// been handled by then.
	waitSeen := func(marker queue.Address) {
		t.Helper()
		b.SessionStarted(marker)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for !a.Receiving(marker) {
			select {
			case <-tick.C:
			case <-ctx.Done():
				t.Fatal("relay A never saw relay B's genuine session")
			}
		}
	}
	victim := newAddr()
	if _, err := kv.Put(ctx, deviceKey(victim), []byte(b.ID())); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "r.forgedrelay", []byte(time.Now().UTC().Format(time.RFC3339Nano))); err != nil {
		t.Fatal(err)
	}
	m1 := newAddr()
	waitSeen(m1)
	if a.Receiving(victim) {
		t.Error("relay A believes a forged presence record")
	}
	e, err := kv.Get(ctx, deviceKey(m1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, deviceKey(victim), e.Value()); err != nil {
		t.Fatal(err)
	}
	waitSeen(newAddr())
	if a.Receiving(victim) {
		t.Error("relay A believes another device's presence record moved onto the victim's key")
	}
	a.mu.Lock()
	_, alive := a.alive["forgedrelay"]
	a.mu.Unlock()
	if alive {
		t.Error("relay A believes a forged heartbeat")
	}
	if n := rej.get("presence"); n != 3 {
		t.Errorf("relay A counted %d rejected presence records, want 3", n)
	}
}

// TestClusterKeyRequired: no key, or a key of the wrong size, is refused.
func TestClusterKeyRequired(t *testing.T) {
	nc := connect(t, startNATS(t))
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if _, err := New(ctx, nc, Config{}, nil); !errors.Is(err, ErrNoClusterKey) {
		t.Errorf("New without a key: %v, want ErrNoClusterKey", err)
	}
	if _, err := New(ctx, nc, Config{ClusterKey: testKey[:31]}, nil); err == nil {
		t.Error("New with a 31-byte key succeeded")
	}
}
