package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pigeonhole/pigeonhole/blobs"
	"github.com/pigeonhole/pigeonhole/keys"
	"github.com/pigeonhole/pigeonhole/push"
	"github.com/pigeonhole/pigeonhole/queue"
	"github.com/pigeonhole/pigeonhole/relay"
)

const serveUsage = `usage: pigeonhole serve [flags]

Runs a relay. With no flags it keeps everything in ./pigeonhole-data
(Pebble database and a self-signed certificate, created on first start)
and listens on UDP :4433.

Every flag can also be set with an environment variable PIGEONHOLE_<NAME>
(upper case, '-' as '_'; e.g. PIGEONHOLE_LISTEN=:4433) or in the file named
by -config, one "name = value" per line. Precedence: command-line flags,
then environment, then config file, then the defaults shown below.

flags:
`

type serveFlags struct {
	config, data, listen, certFile, keyFile, metrics, readyFile, logLevel, logFormat string
	pprof                                                                            bool
	// listening is set once the relay has served: from then on a failure
	// never removes the data directory.
	listening bool

	cfg      relay.Config
	qcfg     queue.Config
	keyCfg   keys.Config
	regBurst int
	regEvery time.Duration
	fetBurst int
	fetEvery time.Duration
	limits   limitFlags
	sndBurst int
	sndEvery time.Duration
	push     pushFlags
	media    mediaFlags
	cluster  clusterFlags
}

func serveFlagSet(f *serveFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), serveUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&f.config, "config", "", "config `file` (name = value lines)")
	fs.StringVar(&f.data, "data", "pigeonhole-data", "data `directory`: Pebble database and self-signed certificate")
	fs.StringVar(&f.listen, "listen", ":4433", "UDP `address` to listen on")
	fs.StringVar(&f.certFile, "cert", "", "TLS certificate `file` (PEM); default: self-signed, kept in -data")
	fs.StringVar(&f.keyFile, "key", "", "TLS private key `file` (PEM), with -cert")
	fs.StringVar(&f.metrics, "metrics", "", "HTTP `address` for Prometheus /metrics (empty: off)")
	fs.BoolVar(&f.pprof, "pprof", false, "also serve Go's profiler at /debug/pprof/ on the -metrics address (for profiling under load; keep that address private)")
	fs.StringVar(&f.readyFile, "ready-file", "", "write {\"addr\",\"fingerprint\"} (and \"metrics\" with -metrics) as JSON to this `file` once listening")
	fs.StringVar(&f.logLevel, "log-level", "info", "log `level`: debug, info, warn, error")
	fs.StringVar(&f.logFormat, "log-format", "text", "log `format` on stderr: text (key=value) or json (one object a line)")
	fs.IntVar(&f.cfg.MaxEnvelopeBytes, "max-envelope-bytes", 256<<10, "largest ciphertext for one device, in bytes")
	fs.IntVar(&f.cfg.MaxWindow, "max-window", 256, "most unacked envelopes in flight per session")
	fs.IntVar(&f.cfg.MaxSendDevices, "max-send-devices", 64, "most device messages in one send")
	fs.IntVar(&f.cfg.MaxMultiDevices, "max-multi-devices", 1000, "most device messages in one multi_send (a group message)")
	fs.IntVar(&f.cfg.PreKeyLowThreshold, "prekey-low-threshold", 10, "tell a device when its one-time prekeys fall below this")
	fs.IntVar(&f.regBurst, "register-burst", 10, "registrations and device links allowed at once per source prefix (see -ipv4-prefix, -ipv6-prefix)")
	fs.DurationVar(&f.regEvery, "register-every", 6*time.Minute, "then one registration per source prefix per this `duration`")
	fs.IntVar(&f.fetBurst, "fetch-burst", 100, "key fetches allowed at once per account")
	fs.DurationVar(&f.fetEvery, "fetch-every", time.Second, "then one key fetch per account per this `duration`")
	fs.IntVar(&f.qcfg.MaxCount, "queue-max-count", 10000, "most messages queued per device")
	fs.Int64Var(&f.qcfg.MaxBytes, "queue-max-bytes", 256<<20, "most bytes queued per device")
	fs.IntVar(&f.qcfg.SenderMaxCount, "queue-sender-max-count", 0, "most messages queued per device from one sending account (0: a tenth of -queue-max-count)")
	fs.Int64Var(&f.qcfg.SenderMaxBytes, "queue-sender-max-bytes", 0, "most bytes queued per device from one sending account (0: a tenth of -queue-max-bytes; not kept in cluster mode)")
	fs.IntVar(&f.sndBurst, "send-burst", 300, "sends (send, multi_send) allowed at once per account")
	fs.DurationVar(&f.sndEvery, "send-every", 50*time.Millisecond, "then one send per account per this `duration`")
	fs.DurationVar(&f.qcfg.Lifetime, "message-lifetime", 30*24*time.Hour, "undelivered messages are deleted after this `duration`")
	fs.DurationVar(&f.qcfg.DedupWindow, "dedup-window", 24*time.Hour, "a client message id is remembered this long")
	fs.DurationVar(&f.qcfg.ScrubInterval, "scrub-interval", 10*time.Minute, "compact the database and delete its old logs this often, so that an acked message is gone from -data within this `duration`")
	fs.IntVar(&f.keyCfg.MaxPreKeys, "max-prekeys", 1000, "one-time prekeys stored per device")
	fs.IntVar(&f.keyCfg.MaxDevices, "max-devices", 6, "devices per account (the primary and linked ones)")
	f.limits.register(fs, &f.cfg)
	fs.DurationVar(&f.cfg.AuthWait, "auth-wait", 10*time.Second, "a connection must authenticate, register or open provisioning within this `duration`, or it is closed")
	fs.IntVar(&f.cfg.UnauthFrameBytes, "unauth-frame-bytes", 16<<10, "largest first frame of a stream before the connection authenticates, in bytes")
	fs.Int64Var(&f.cfg.UnauthBufferBytes, "unauth-buffer-bytes", 32<<20, "first-frame bytes buffered for all unauthenticated connections together")
	fs.IntVar(&f.cfg.MaxUnauthConnsPerPrefix, "max-unauth-per-prefix", 64, "unauthenticated connections at once per network prefix (/64 IPv6, /32 IPv4)")
	f.push.register(fs)
	f.media.register(fs, &f.cfg)
	f.cluster.register(fs)
	return fs
}

func serve(args []string) int {
	var f serveFlags
	fs := serveFlagSet(&f)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "pigeonhole: serve takes no arguments, got %q\n", fs.Args())
		return 2
	}
	if err := applyConfig(fs, configFileFrom(f.config)); err != nil {
		return fail("%v", err)
	}
	f.cfg.RegisterLimit = relay.Limit{Burst: f.regBurst, Every: f.regEvery}
	f.cfg.FetchLimit = relay.Limit{Burst: f.fetBurst, Every: f.fetEvery}
	f.cfg.SendLimit = relay.Limit{Burst: f.sndBurst, Every: f.sndEvery}
	f.limits.apply(&f.cfg)
	log, err := newLogger(os.Stderr, f.logLevel, f.logFormat)
	if err != nil {
		return fail("%v", err)
	}
	for _, w := range unknownEnv(fs) {
		log.Warn(w)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	_, statErr := os.Stat(f.data)
	fresh := errors.Is(statErr, os.ErrNotExist)
	if err := runRelay(ctx, &f, log); err != nil {
		if fresh && !f.listening {
			// A start that failed (a busy port, a bad flag found late)
			// leaves no data directory behind for the next try to trip
			// over: nothing was ever served from it.
			if rmErr := os.RemoveAll(f.data); rmErr != nil {
				log.Warn("could not remove the data directory this failed start created", "data", f.data, "err", rmErr)
			}
		}
		return fail("%v", redactErr(err)) // no NATS password in the message
	}
	return 0
}

// configFileFrom returns -config, or PIGEONHOLE_CONFIG when the flag was
// not given.
func configFileFrom(flagVal string) string {
	if flagVal != "" {
		return flagVal
	}
	return os.Getenv("PIGEONHOLE_CONFIG")
}

func runRelay(ctx context.Context, f *serveFlags, log *slog.Logger) error {
	if err := os.MkdirAll(f.data, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	cert, err := loadCert(f)
	if err != nil {
		return err
	}
	certKeys, err := relay.LoadOrCreateSenderCertKeys(f.data)
	if err != nil {
		return err
	}
	db, err := openDB(filepath.Join(f.data, "db"), log)
	if err != nil {
		return err
	}
	defer db.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var (
		ks     relay.KeyDirectory
		qs     relay.Queues
		expire func(context.Context) error // the Pebble queues' expiry pass
		cs     *clusterStores
		tokens push.Records // nil: in the local database
		pks    *keys.Store  // nil in cluster mode
		pqs    *queue.Store // nil in cluster mode
	)
	if f.cluster.clustered() {
		if f.media.kind == "dir" {
			return errors.New("with -store nats://..., media must be shared by every relay: use -media s3 (or off)")
		}
		if cs, err = f.cluster.open(ctx, f, log, reg); err != nil {
			return err
		}
		defer cs.close()
		ks, qs, tokens = cs.keys, cs.queues, cs.tokens
	} else {
		if pks, err = keys.Open(db, f.keyCfg); err != nil {
			return fmt.Errorf("open key directory: %w", err)
		}
		pqs, err = queue.Open(db, f.qcfg, log.With("component", "queue"))
		if err != nil {
			return fmt.Errorf("open queues: %w", err)
		}
		if err := registerStoreMetrics(reg, db, pqs); err != nil {
			return err
		}
		ks, qs, expire = pks, pqs, pqs.Run
	}
	srv, err := relay.New(f.cfg, ks, qs, log, reg)
	if err != nil {
		return err
	}
	if cs != nil {
		srv.UseCluster(cs.cluster)
	}
	srv.UseSenderCertificates(certKeys)
	ps, err := f.push.pushService(ctx, db, tokens, f.data, log, reg)
	if err != nil {
		return err
	}
	if ps != nil {
		srv.UsePush(ps)
	}
	if stopAdmin, err := serveAdmin(adminStores{data: f.data, db: db, keys: pks, queues: pqs, srv: srv}, log); err != nil {
		// A data path too long for a Unix socket (108 bytes) must not
		// keep the relay from running: the admin commands then need the
		// relay stopped.
		log.Warn("no admin socket: pigeonhole backup, accounts and queues will need the relay stopped", "err", err)
	} else {
		defer stopAdmin()
	}
	f.media.maxBlob = f.cfg.MaxBlobBytes
	md, err := f.media.open(ctx, f.data, log)
	if err != nil {
		return err
	}
	if md != nil {
		srv.UseBlobs(md.store, blobs.NewQuota(db, f.media.quota))
	}
	listen := f.listen
	if md != nil && md.dir != nil {
		if listen, err = dualPort(listen); err != nil {
			return err
		}
	}
	ln, err := srv.Listen(listen, cert)
	if err != nil {
		return err
	}
	defer ln.Close()
	stopMedia, err := md.serve(ctx, ln.Addr().String(), cert, log)
	if err != nil {
		return err
	}
	defer stopMedia()
	fp := relay.Fingerprint(cert)
	hl := &health{}
	if cs != nil {
		hl.add("nats", cs.connected)
	}
	hl.up.Store(true)
	stopReady := context.AfterFunc(ctx, func() { hl.up.Store(false) }) // draining
	defer stopReady()
	metricsAddr := ""
	if f.metrics != "" {
		ms, addr, err := startMetrics(f.metrics, reg, hl, f.pprof, log)
		if err != nil {
			return err
		}
		defer ms.Close()
		metricsAddr = addr
	}
	if f.readyFile != "" {
		if err := writeReady(f.readyFile, ln.Addr().String(), fp, metricsAddr); err != nil {
			return err
		}
	}
	// Said once everything is up (metrics and the ready file included),
	// so whoever waits for this line can use all of it; said once, on
	// stdout (the log has no second "listening" line).
	f.listening = true
	fmt.Fprintf(os.Stdout, "pigeonhole: listening on %s\npigeonhole: certificate fingerprint %s\n", ln.Addr(), fp)
	for _, k := range certKeys.Listed(time.Now(), max(f.cfg.SenderCertLifetime, 24*time.Hour)) {
		fmt.Fprintf(os.Stdout, "pigeonhole: sender certificate key %s\n", k)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	bgCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if expire != nil {
		wg.Go(func() {
			if err := expire(bgCtx); err != nil && bgCtx.Err() == nil {
				log.Error("queue expiry stopped", "err", err)
			}
		})
	}
	if ps != nil {
		wg.Go(func() { ps.Run(bgCtx) })
	}
	err = srv.Serve(ctx, ln)
	log.Info("relay stopped")
	return err
}

func loadCert(f *serveFlags) (tls.Certificate, error) {
	if f.certFile != "" || f.keyFile != "" {
		if f.certFile == "" || f.keyFile == "" {
			return tls.Certificate{}, errors.New("-cert and -key go together")
		}
		cert, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("load certificate: %w", err)
		}
		return cert, nil
	}
	return relay.LoadOrCreateCertificate(f.data)
}

func writeReady(path, addr, fp, metrics string) error {
	ready := map[string]string{"addr": addr, "fingerprint": fp}
	if metrics != "" {
		ready["metrics"] = metrics
	}
	b, err := json.Marshal(ready)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write ready file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write ready file: %w", err)
	}
	return nil
}

// startMetrics serves /metrics, /healthz and /readyz on addr and returns
// the address it bound.
func startMetrics(addr string, reg *prometheus.Registry, hl *health, profile bool, log *slog.Logger) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("metrics listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	hl.register(mux)
	if profile {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	log.Info("metrics listening", "addr", ln.Addr().String())
	return hs, ln.Addr().String(), nil
}

// dbCacheBytes is Pebble's block cache. With Pebble's 8 MiB default,
// the dedup lookup of every send read index blocks from disk; 64 MiB made
// 64 concurrent durable appends 1.6x faster (queue benchmarks).
const dbCacheBytes = 64 << 20

// openDB opens (or creates) the relay's Pebble database, with bloom
// filters so that looking up a key that is not there (a new dedup key)
// rarely touches a data block.
func openDB(dir string, log *slog.Logger) (*pebble.DB, error) {
	cache := pebble.NewCache(dbCacheBytes)
	defer cache.Unref() // the DB holds its own reference
	opts := &pebble.Options{
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{log.With("component", "pebble")},
		Cache:              cache,
	}
	opts.Levels[0].FilterPolicy = bloom.FilterPolicy(10) // inherited by every level
	queue.PebbleOptions(opts)                            // obsolete WALs deleted, not recycled
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", dir, err)
	}
	return db, nil
}

// pebbleLogger sends Pebble's messages to slog: its chatter at debug
// level, its errors at error level.
type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Fatalf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...))
	os.Exit(1)
}

// fingerprintFlags are the flags of "pigeonhole fingerprint".
type fingerprintFlags struct {
	data, certFile string
	senderKeys     bool
}

func fingerprintFlagSet(f *fingerprintFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("fingerprint", flag.ContinueOnError)
	fs.StringVar(&f.data, "data", "pigeonhole-data", "data `directory` of the relay")
	fs.StringVar(&f.certFile, "cert", "", "TLS certificate `file` (PEM) instead of the self-signed one")
	fs.BoolVar(&f.senderKeys, "sender-keys", false, "print the sender certificate keys (id and Ed25519 public key, one a line, the signing one first) instead")
	return fs
}

func fingerprint(args []string) int {
	var f fingerprintFlags
	fs := fingerprintFlagSet(&f)
	data, certFile := &f.data, &f.certFile
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if f.senderKeys {
		ks, err := relay.LoadSenderCertKeys(*data)
		if errors.Is(err, os.ErrNotExist) {
			return fail("no sender certificate key in %s\npigeonhole: hint: serve makes one on its first start", *data)
		}
		if err != nil {
			return fail("%v", err)
		}
		for _, k := range ks.Listed(time.Now(), 24*time.Hour) {
			fmt.Println(k)
		}
		return 0
	}
	var cert tls.Certificate
	var err error
	if *certFile != "" {
		cert, err = loadCertOnly(*certFile)
	} else {
		cert, err = loadCertOnly(filepath.Join(*data, relay.CertFileName))
		if errors.Is(err, os.ErrNotExist) {
			return fail("no relay certificate in %s\npigeonhole: hint: run this where \"pigeonhole serve\" ran, or name its data directory with -data DIR (or its certificate with -cert FILE); serve makes the certificate on its first start", *data)
		}
	}
	if err != nil {
		return fail("%v", err)
	}
	fmt.Println(relay.Fingerprint(cert))
	return 0
}
