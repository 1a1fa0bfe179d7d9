package messenger

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pigeonhole/pigeonhole/blobs"
	"github.com/pigeonhole/pigeonhole/keys"
	"github.com/pigeonhole/pigeonhole/queue"
	"github.com/pigeonhole/pigeonhole/relay"
	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/relaytest"
)

// testRelay is a real relay on 127.0.0.1 over QUIC with Pebble in a
// directory, for the tests and the examples (which have no testing.T).
type testRelay struct {
	dir, addr string
	cfg       Config
	db        *pebble.DB
	queues    *queue.Store // the relay's queues, for tests that read what it stored
	keys      *keys.Store  // the relay's key directory, for tests playing its operator
	metrics   *prometheus.Registry
	cancel    context.CancelFunc
	done      chan error
	stopOnce  sync.Once
	// closeMedia stops the blob store and its HTTPS server, if any.
	closeMedia func()
}

// relayConfig has limits high enough for tests registering many
// accounts from 127.0.0.1.
func relayConfig() relay.Config {
	l := relay.Limit{Burst: 10000, Every: time.Millisecond}
	return relay.Config{
		RegisterLimit: l, FetchLimit: l, ProvisioningLimit: l, NewAccountLimit: l, PreKeyClaimLimit: l,
		MaxProvisioningPerSource: 10000,
		SendLimit:                relay.Limit{Burst: 1 << 30, Every: time.Nanosecond},
	}
}

// startTestRelay starts a relay on the data in dir, listening on addr
// ("127.0.0.1:0" for any port); started again on the same dir and
// address it is the same relay after a restart. It issues sender
// certificates (sealed sends work).
func startTestRelay(dir, addr string) (*testRelay, error) { return startRelay(dir, addr, true) }

// startRelay is startTestRelay; without sealed, the relay has no sender
// certificate keys and takes no sealed sends (UNSUPPORTED).
func startRelay(dir, addr string, sealed bool) (*testRelay, error) {
	return startRelayWith(dir, addr, sealed, false)
}

// startRelayWith is startRelay; with media, the relay keeps blobs in a
// directory store served over HTTPS, as "pigeonhole serve" does.
func startRelayWith(dir, addr string, sealed, media bool) (*testRelay, error) {
	log := slog.New(slog.DiscardHandler)
	opts := &pebble.Options{FormatMajorVersion: pebble.FormatNewest, Logger: relaytest.QuietPebble{}}
	queue.PebbleOptions(opts)
	db, err := pebble.Open(filepath.Join(dir, "db"), opts)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*testRelay, error) { db.Close(); return nil, err }
	ks, err := keys.Open(db, keys.Config{})
	if err != nil {
		return fail(err)
	}
	qs, err := queue.Open(db, queue.Config{}, log)
	if err != nil {
		return fail(err)
	}
	reg := prometheus.NewRegistry()
	srv, err := relay.New(relayConfig(), ks, qs, log, reg)
	if err != nil {
		return fail(err)
	}
	if sealed {
		ck, err := relay.LoadOrCreateSenderCertKeys(dir)
		if err != nil {
			return fail(err)
		}
		srv.UseSenderCertificates(ck)
	}
	cert, err := relay.LoadOrCreateCertificate(dir)
	if err != nil {
		return fail(err)
	}
	ln, err := srv.Listen(addr, cert)
	if err != nil {
		return fail(err)
	}
	var closeMedia func()
	if media {
		key := make([]byte, 32)
		store, err := blobs.NewDir(blobs.DirConfig{Path: filepath.Join(dir, "blobs"), Key: key})
		if err != nil {
			ln.Close()
			return fail(err)
		}
		srv.UseBlobs(store, blobs.NewQuota(db, blobs.QuotaConfig{}))
		hs, err := relay.ServeHTTPS(ln.Addr().String(), cert, store.Handler(), log)
		if err != nil {
			ln.Close()
			store.Close()
			return fail(err)
		}
		closeMedia = func() { hs.Close(); store.Close() }
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &testRelay{dir: dir, addr: ln.Addr().String(), db: db, queues: qs, keys: ks, metrics: reg, cancel: cancel, done: make(chan error, 1), closeMedia: closeMedia}
	r.cfg = Config{RelayAddr: r.addr, Fingerprint: relay.Fingerprint(cert), MinBackoffMillis: 20, MaxBackoffMillis: 500,
		// A connection made while the relay shuts down is given up in 3 s.
		KeepAliveMillis: 1000}
	go func() { r.done <- srv.Serve(ctx, ln) }()
	return r, nil
}

// stop shuts the relay down and closes its database, once.
func (r *testRelay) stop() error {
	var err error
	r.stopOnce.Do(func() {
		r.cancel()
		select {
		case err = <-r.done:
		case <-time.After(60 * time.Second):
			err = errors.New("relay did not stop")
		}
		if r.closeMedia != nil {
			r.closeMedia()
		}
		if cerr := r.db.Close(); err == nil {
			err = cerr
		}
	})
	return err
}

// newExampleRelay starts a relay in a new temporary directory for an
// example; the returned function stops it and removes the directory.
func newExampleRelay() (*Config, func()) {
	dir, err := os.MkdirTemp("", "messenger-example-")
	if err != nil {
		panic(err)
	}
	r, err := startTestRelay(dir, "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	cfg := r.cfg
	return &cfg, func() { r.stop(); os.RemoveAll(dir) }
}

// NewExampleRelay is newExampleRelay for the examples in package
// messenger_test (this file is compiled into tests only).
var NewExampleRelay = newExampleRelay

type clientConn = client.Conn
