package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pigeonhole/pigeonhole/keys/jskeys"
	"github.com/pigeonhole/pigeonhole/push/jstokens"
	"github.com/pigeonhole/pigeonhole/queue/jsqueue"
	"github.com/pigeonhole/pigeonhole/relay"
	"github.com/pigeonhole/pigeonhole/relay/natscluster"
)

// clusterFlags choose where the key directory and the queues live.
type clusterFlags struct {
	store    string
	replicas int
	name     string
	expiry   time.Duration
	batches  int
	auth     natsAuthFlags
}

func (c *clusterFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.store, "store", "pebble", "where keys and queues live: `pebble` (the local database in -data) or a comma-separated list of NATS server URLs (nats://host:4222,...) of a JetStream cluster shared by every relay of a cluster")
	fs.IntVar(&c.replicas, "nats-replicas", 3, "JetStream replicas of the key bucket and the queue stream with -store nats://... (3: an accepted message survives the loss of any one NATS node)")
	fs.DurationVar(&c.expiry, "presence-expiry", 10*time.Second, "with -store nats://..., a relay that stops sending heartbeats (every fifth of this) counts as dead after this `duration`, and its devices as offline (they get pushes again)")
	fs.IntVar(&c.batches, "nats-batches", 16, "with -store nats://..., the most appends this relay has open at once (JetStream atomic batches; the stream allows 50 for all relays together unless jetstream.limits.batch.max_inflight_per_stream is raised)")
	fs.StringVar(&c.name, "nats-name", "", "`name` this relay gives its NATS connection (shown in NATS monitoring; default: pigeonhole-relay)")
	c.auth.register(fs)
}

// maxBatchDevices is the most device messages in one cluster append: a
// JetStream atomic batch holds 1,000 messages by default, and a send with
// a client message id adds its dedup record.
const maxBatchDevices = 999

// clustered reports whether -store names NATS servers.
func (c *clusterFlags) clustered() bool { return c.store != "pebble" && c.store != "" }

// clusterStores is what a relay of a cluster keeps in NATS JetStream.
type clusterStores struct {
	nc      *nats.Conn
	keys    *jskeys.Store
	queues  *jsqueue.Store
	tokens  *jstokens.Records
	cluster *natscluster.Cluster
}

// open connects to the NATS servers and opens (creating if needed) the key
// bucket, the queue stream, the push token bucket and the presence bucket.
func (c *clusterFlags) open(ctx context.Context, f *serveFlags, log *slog.Logger, reg prometheus.Registerer) (*clusterStores, error) {
	for _, u := range strings.Split(c.store, ",") {
		if !strings.HasPrefix(u, "nats://") && !strings.HasPrefix(u, "tls://") {
			return nil, fmt.Errorf("-store %q: want pebble or nats:// URLs", redactURLs(c.store))
		}
	}
	clusterKey, err := c.auth.loadClusterKey()
	if err != nil {
		return nil, err
	}
	authOpts, authed, err := c.auth.options(c.store)
	if err != nil {
		return nil, err
	}
	rejected, err := registerRejected(reg)
	if err != nil {
		return nil, err
	}
	cs := &clusterStores{}
	// A multi_send is one atomic batch, with one more message for its
	// dedup record; JetStream takes at most 1,000 messages per batch.
	if f.cfg.MaxMultiDevices > maxBatchDevices {
		log.Info("with -store nats://..., -max-multi-devices is capped", "from", f.cfg.MaxMultiDevices, "to", maxBatchDevices)
		f.cfg.MaxMultiDevices = maxBatchDevices
	}
	name := c.name
	if name == "" {
		name = "pigeonhole-relay"
	}
	nlog := log.With("component", "nats")
	nc, err := nats.Connect(c.store, append(authOpts,
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			// A permissions violation says the NATS user lacks a
			// permission this relay needs (see the README's config).
			nlog.Warn("NATS reports an error", "err", redactErr(err))
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			nlog.Warn("disconnected from NATS", "err", redactErr(err))
		}),
	)...)
	if err != nil {
		hint := ""
		if errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) || errors.Is(err, nats.ErrAuthRevoked) {
			hint = " (check -nats-creds, -nats-nkey, or -nats-user and -nats-password-file)"
		}
		return nil, fmt.Errorf("connect to NATS %s: %w%s", redactURLs(c.store), redactErr(err), hint)
	}
	cs.nc = nc
	if !authed {
		nlog.Warn("connected to NATS without credentials (-nats-insecure): anyone who can reach these NATS servers can read the queues and disrupt the cluster")
	}
	if _, err := nc.TLSConnectionState(); err != nil {
		nlog.Warn("the NATS connection is not encrypted: queued envelopes, account ids and credentials cross the network in the clear (use tls:// URLs or -nats-ca)")
	}
	// One stored message must fit in one NATS message.
	if need := int64(f.cfg.MaxEnvelopeBytes) + 4<<10; nc.MaxPayload() < need {
		nc.Close()
		return nil, fmt.Errorf("-max-envelope-bytes %d needs NATS max_payload of at least %d; the servers allow %d", f.cfg.MaxEnvelopeBytes, need, nc.MaxPayload())
	}
	// A cluster that is starting has no JetStream leader yet: try for a
	// while before giving up.
	openCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err = retry(openCtx, log, "open key directory", func(ctx context.Context) (err error) {
		cs.keys, err = jskeys.Open(ctx, nc, jskeys.Config{
			Replicas: c.replicas, MaxPreKeys: f.keyCfg.MaxPreKeys, MaxDevices: f.keyCfg.MaxDevices,
			ClusterKey: clusterKey, Rejected: rejected, Log: log.With("component", "keys"),
		})
		return err
	})
	if err == nil {
		err = retry(openCtx, log, "open queues", func(ctx context.Context) (err error) {
			cs.queues, err = jsqueue.Open(ctx, nc, jsqueue.Config{
				Replicas: c.replicas, MaxCount: f.qcfg.MaxCount, SenderMaxCount: f.qcfg.SenderMaxCount, Lifetime: f.qcfg.Lifetime, MaxBatchesInFlight: c.batches,
				DedupWindow: f.qcfg.DedupWindow, MaxMessageBytes: int32(f.cfg.MaxEnvelopeBytes + 4<<10),
			}, log.With("component", "queue"))
			return err
		})
	}
	if err == nil {
		err = retry(openCtx, log, "open push tokens", func(ctx context.Context) (err error) {
			cs.tokens, err = jstokens.Open(ctx, nc, "PIGEONHOLE_PUSH_TOKENS", c.replicas)
			return err
		})
	}
	if err == nil {
		err = retry(openCtx, log, "open presence", func(ctx context.Context) (err error) {
			cs.cluster, err = natscluster.New(ctx, nc, natscluster.Config{
				Replicas: c.replicas, Expiry: c.expiry, Heartbeat: c.expiry / 5, ClusterKey: clusterKey, Rejected: rejected,
			}, log.With("component", "cluster"))
			return err
		})
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	// Set once everything is open (the handler runs on another goroutine).
	nc.SetReconnectHandler(func(nc *nats.Conn) {
		nlog.Info("reconnected to NATS", "server", nc.ConnectedUrlRedacted())
		// Wake-ups and control messages published while this relay was
		// away are lost: every reader reads again, and every connection
		// is checked against the key directory (a revoke may have gone
		// by).
		cs.queues.WakeAll()
		cs.cluster.Reconnected()
	})
	log.Info("keys and queues in NATS JetStream", "servers", nc.ConnectedUrlRedacted(), "replicas", c.replicas)
	return cs, nil
}

// registerRejected adds pigeonhole_cluster_records_rejected_total to reg
// and returns the function that counts one rejection of a kind.
func registerRejected(reg prometheus.Registerer) (func(kind string), error) {
	cv := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pigeonhole_cluster_records_rejected_total",
		Help: "Key directory records and cluster messages refused because they fail their cluster-key MAC (kind: account, prekeys, seen, presence, control): someone without the cluster key wrote to NATS.",
	}, []string{"kind"})
	for _, k := range []string{"account", "prekeys", "seen", "presence", "control"} {
		cv.WithLabelValues(k)
	}
	if err := reg.Register(cv); err != nil {
		return nil, err
	}
	return func(kind string) { cv.WithLabelValues(kind).Inc() }, nil
}

// connected reports whether the NATS connection is up (for /readyz).
func (cs *clusterStores) connected() error {
	if st := cs.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("connection %s", strings.ToLower(st.String()))
	}
	return nil
}

// close drains the connection, so that writes in flight finish.
func (cs *clusterStores) close() {
	if err := cs.nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		cs.nc.Close()
	}
}

var (
	_ relay.KeyDirectory = (*jskeys.Store)(nil)
	_ relay.Queues       = (*jsqueue.Store)(nil)
)

// retry calls fn until it succeeds or ctx ends, and returns fn's last
// error then.
func retry(ctx context.Context, log *slog.Logger, what string, fn func(context.Context) error) error {
	for attempt := 1; ; attempt++ {
		callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := fn(callCtx)
		cancel()
		if err == nil {
			return nil
		}
		if attempt == 1 {
			log.Warn(what+": retrying until the JetStream cluster answers", "err", redactErr(err))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, redactErr(err))
		case <-time.After(250 * time.Millisecond):
		}
	}
}
