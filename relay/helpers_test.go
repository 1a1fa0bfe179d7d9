package relay_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/quic-go/quic-go"
	"go.mau.fi/libsignal/keys/identity"

	"github.com/pigeonhole/pigeonhole/keys"
	"github.com/pigeonhole/pigeonhole/queue"
	"github.com/pigeonhole/pigeonhole/relay"
	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/relaytest"
)

// testRelay is a real relay on 127.0.0.1 over QUIC with Pebble in a
// temporary directory.
type testRelay struct {
	srv    *relay.Server
	db     *pebble.DB
	keys   *keys.Store
	queues *queue.Store
	reg    *prometheus.Registry
	opts   client.Options
	cancel context.CancelFunc
	done   chan error

	stopOnce sync.Once
}

// testConfig is a relay config for tests: limits high enough that tests
// registering many accounts from 127.0.0.1 are not rate-limited.
func testConfig() relay.Config {
	return relay.Config{
		RegisterLimit:     relay.Limit{Burst: 10000, Every: time.Millisecond},
		FetchLimit:        relay.Limit{Burst: 10000, Every: time.Millisecond},
		ProvisioningLimit: relay.Limit{Burst: 10000, Every: time.Millisecond},
		NewAccountLimit:   relay.Limit{Burst: 10000, Every: time.Millisecond},
		PreKeyClaimLimit:  relay.Limit{Burst: 10000, Every: time.Millisecond},

		MaxProvisioningPerSource: 10000,
		SendLimit:                relay.Limit{Burst: 1 << 30, Every: time.Nanosecond},
	}
}

func openDB(t testing.TB, dir string) *pebble.DB {
	t.Helper()
	// As cmd/pigeonhole opens it: bloom filters and a 64 MiB cache.
	cache := pebble.NewCache(64 << 20)
	defer cache.Unref()
	opts := &pebble.Options{FormatMajorVersion: pebble.FormatNewest, Logger: relaytest.QuietPebble{}, Cache: cache}
	opts.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
	queue.PebbleOptions(opts)
	db, err := pebble.Open(dir, opts)
	if err != nil {
		t.Fatalf("open pebble: %v", err)
	}
	return db
}

func startRelay(t testing.TB, cfg relay.Config) *testRelay {
	return startRelayWith(t, cfg, queue.Config{})
}

func startRelayWith(t testing.TB, cfg relay.Config, qcfg queue.Config) *testRelay {
	t.Helper()
	return startRelayIn(t, cfg, qcfg, t.TempDir(), "127.0.0.1:0")
}

// startRelayIn starts a relay on the data in dir, listening on addr; a
// relay started again on the same dir and address is the same relay after
// a restart.
func startRelayIn(t testing.TB, cfg relay.Config, qcfg queue.Config, dir, addr string) *testRelay {
	t.Helper()
	return startRelayLogged(t, cfg, qcfg, dir, addr, slog.New(slog.DiscardHandler))
}

// startRelayLogged is startRelayIn with the relay's and queue's logs
// going to log.
func startRelayLogged(t testing.TB, cfg relay.Config, qcfg queue.Config, dir, addr string, log *slog.Logger) *testRelay {
	t.Helper()
	return startRelaySetup(t, cfg, qcfg, dir, addr, log, nil)
}

// startRelaySetup is startRelayLogged with setup called on the server
// and its database before it serves (nil: nothing).
func startRelaySetup(t testing.TB, cfg relay.Config, qcfg queue.Config, dir, addr string, log *slog.Logger, setup func(*relay.Server, *pebble.DB, *prometheus.Registry)) *testRelay {
	t.Helper()
	db := openDB(t, dir+"/db")
	ks, err := keys.Open(db, keys.Config{})
	if err != nil {
		t.Fatal(err)
	}
	qs, err := queue.Open(db, qcfg, log)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	srv, err := relay.New(cfg, ks, qs, log, reg)
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(srv, db, reg)
	}
	cert, err := relay.LoadOrCreateCertificate(dir)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := srv.Listen(addr, cert)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &testRelay{
		srv: srv, db: db, keys: ks, queues: qs, reg: reg, cancel: cancel, done: make(chan error, 1),
		opts: client.Options{Addr: ln.Addr().String(), Fingerprint: relay.Fingerprint(cert)},
	}
	go func() { r.done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop shuts the relay down and closes its database, once.
func (r *testRelay) stop(t testing.TB) {
	r.stopOnce.Do(func() { r.shutdown(t) })
}

func (r *testRelay) shutdown(t testing.TB) {
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Error("relay did not stop")
	}
	r.db.Close()
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (r *testRelay) dial(t testing.TB) *client.Conn {
	t.Helper()
	c, err := client.Dial(ctxT(t), &r.opts)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// device is a registered test device with real Signal keys.
type device struct {
	client.Account
	auth     ed25519.PrivateKey
	identity *identity.KeyPair
}

func (d *device) creds() *client.Credentials {
	return &client.Credentials{AccountID: d.AccountID, DeviceID: d.DeviceID, AuthKey: d.auth}
}

// newRegistration makes a registration with real Signal keys and n
// one-time prekeys (ids 1..n).
func newRegistration(t testing.TB, n int) (*client.Registration, *identity.KeyPair) {
	t.Helper()
	reg, ik, err := relaytest.NewRegistration(n)
	if err != nil {
		t.Fatal(err)
	}
	return reg, ik
}

// register creates an account with n one-time prekeys.
func (r *testRelay) register(t testing.TB, n int) *device {
	t.Helper()
	reg, ik := newRegistration(t, n)
	c := r.dial(t)
	acct, err := c.Register(ctxT(t), reg)
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	c.Close()
	return &device{Account: *acct, auth: reg.AuthKey, identity: ik}
}

// session dials and authenticates d with the given window.
func (r *testRelay) session(t testing.TB, d *device, window int) *client.Conn {
	t.Helper()
	c := r.dial(t)
	if _, err := c.Authenticate(ctxT(t), d.creds(), window); err != nil {
		t.Fatalf("authenticate: %v", err)
	}
	return c
}

func randomID(t testing.TB) []byte {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// nextEnvelope waits for the next envelope, skipping other events.
func nextEnvelope(t testing.TB, c *client.Conn) *client.Envelope {
	t.Helper()
	for {
		ev, err := c.Next(ctxT(t))
		if err != nil {
			t.Fatalf("next: %v", err)
		}
		if ev.Kind == client.EventEnvelope {
			return ev.Envelope
		}
	}
}

// nextKind waits for the next event and checks its kind. Prekey notices
// are advisory (a test device often has none) and skipped unless asked for.
func nextKind(t testing.TB, c *client.Conn, kind int) *client.Event {
	t.Helper()
	ev, err := c.Next(ctxT(t))
	for err == nil && ev.Kind == client.EventPreKeysLow && kind != client.EventPreKeysLow {
		ev, err = c.Next(ctxT(t))
	}
	if err != nil {
		t.Fatalf("next: %v", err)
	}
	if ev.Kind != kind {
		t.Fatalf("event kind %d, want %d", ev.Kind, kind)
	}
	return ev
}

// metric returns the value of a counter or gauge without labels.
func (r *testRelay) metric(t testing.TB, name string) float64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		var sum float64
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
		return sum
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// isAppError reports whether err is a QUIC application close with code.
func isAppError(err error, code quic.ApplicationErrorCode) bool {
	var ae *quic.ApplicationError
	return errors.As(err, &ae) && ae.ErrorCode == code
}
