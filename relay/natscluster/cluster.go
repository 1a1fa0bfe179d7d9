package natscluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/pigeonhole/pigeonhole/queue"
	"github.com/pigeonhole/pigeonhole/relay"
)

// Config sets the presence bucket and its timing. Zero values mean the
// defaults.
type Config struct {
	// Bucket is the presence bucket (default PIGEONHOLE_PRESENCE).
	Bucket string
	// Replicas of the bucket (default 1; 3 in a cluster).
	Replicas int
	// Heartbeat is how often a relay says it is alive (default 2 s).
	Heartbeat time.Duration
	// Expiry is how long after its last heartbeat a relay counts as dead
	// (default 10 s).
	Expiry time.Duration
	// ClusterKey is the ClusterKeySize-byte secret every relay of the
	// cluster shares (never stored in NATS). Presence records and control
	// messages carry an HMAC-SHA256 under keys derived from it, and those
	// without a valid one are dropped. Required: New returns
	// ErrNoClusterKey without it.
	ClusterKey []byte
	// Rejected, if set, is called with "presence" or "control" for each
	// presence record or control message dropped for a bad MAC (for a
	// metric).
	Rejected func(kind string)
}

func (c *Config) setDefaults() {
	if c.Bucket == "" {
		c.Bucket = "PIGEONHOLE_PRESENCE"
	}
	c.Replicas = max(c.Replicas, 1)
	if c.Heartbeat <= 0 {
		c.Heartbeat = 2 * time.Second
	}
	if c.Expiry <= 0 {
		c.Expiry = 10 * time.Second
	}
}

// Cluster is one relay's view of the cluster.
type Cluster struct {
	nc   *nats.Conn
	kv   jetstream.KeyValue
	cfg  Config
	keys macKeys
	log  *slog.Logger
	id   string // this relay's id

	// locks order one device's presence writes on this relay (striped by
	// the account's first byte, which is random): a session that ends and
	// one that starts must not interleave their record's reads and writes.
	locks [64]sync.Mutex

	mu      sync.Mutex
	where   map[queue.Address]string // device → relay with its receiving session
	alive   map[string]time.Time     // relay → when its heartbeat was last seen
	mine    map[queue.Address]int    // this relay's receiving sessions per device
	handler relay.ClusterHandlers
}

// New opens (creating if needed) the presence bucket. The caller keeps
// ownership of nc.
func New(ctx context.Context, nc *nats.Conn, cfg Config, log *slog.Logger) (*Cluster, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.setDefaults()
	mk, err := deriveKeys(cfg.ClusterKey)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("natscluster: %w", err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: cfg.Bucket, History: 1, Storage: jetstream.MemoryStorage, Replicas: cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("natscluster: bucket %s: %w", cfg.Bucket, err)
	}
	return &Cluster{
		nc: nc, kv: kv, cfg: cfg, keys: mk, log: log, id: strings.ToLower(nuid.Next()),
		where: make(map[queue.Address]string), alive: make(map[string]time.Time), mine: make(map[queue.Address]int),
	}, nil
}

// ID is this relay's id in the cluster.
func (c *Cluster) ID() string { return c.id }

func deviceKey(a queue.Address) string { return "d." + a.Token() }

// Start watches the presence bucket, subscribes to control messages,
// and sends heartbeats until ctx ends; then it deletes this relay's
// heartbeat, so the others know at once. It fails only if the watch or
// the subscriptions cannot be made.
func (c *Cluster) Start(ctx context.Context, h relay.ClusterHandlers) error {
	c.mu.Lock()
	c.handler = h
	c.mu.Unlock()
	w, err := c.kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("natscluster: watch presence: %w", err)
	}
	subs, err := c.subscribe()
	if err != nil {
		return err
	}
	// A first heartbeat that fails (JetStream still electing a leader
	// while the cluster starts, or a loaded NATS) does not stop the
	// relay: the next ones are tried every Heartbeat, and until one
	// lands the other relays do not count this one alive, which costs
	// only its online-only traffic from them.
	if err := c.beat(ctx); err != nil {
		if ctx.Err() != nil {
			return err
		}
		c.log.Warn("cluster heartbeat failed; trying again", "err", err)
	}
	go c.watch(w)
	go func() {
		t := time.NewTicker(c.cfg.Heartbeat)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				for _, s := range subs {
					_ = s.Unsubscribe()
				}
				dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_ = c.kv.Delete(dctx, "r."+c.id)
				cancel()
				return
			case <-t.C:
				if err := c.beat(ctx); err != nil && ctx.Err() == nil {
					c.log.Warn("cluster heartbeat failed", "err", err)
				}
				c.sweep(ctx)
			}
		}
	}()
	return nil
}

func (c *Cluster) beat(ctx context.Context) error {
	bctx, cancel := context.WithTimeout(ctx, c.cfg.Heartbeat)
	defer cancel()
	key := "r." + c.id
	if _, err := c.kv.Put(bctx, key, c.sealPresence(key, []byte(time.Now().UTC().Format(time.RFC3339Nano)))); err != nil {
		return fmt.Errorf("natscluster: heartbeat: %w", err)
	}
	return nil
}

// watch keeps the in-memory picture from the bucket's updates.
func (c *Cluster) watch(w jetstream.KeyWatcher) {
	defer w.Stop()
	replayed := true // the bucket's current values come first, then nil
	for e := range w.Updates() {
		if e == nil {
			replayed = false
			continue
		}
		gone := e.Operation() != jetstream.KeyValuePut
		var val []byte
		if !gone {
			var ok bool
			if val, ok = c.openPresence(e.Key(), e.Value()); !ok {
				// A forged record: a heartbeat is not believed, and a
				// device's record counts as gone (it gets pushes rather
				// than have them suppressed by a forger).
				c.rejected("presence")
				if !strings.HasPrefix(e.Key(), "d.") {
					continue
				}
				gone = true
			}
		}
		c.mu.Lock()
		switch k := e.Key(); {
		case strings.HasPrefix(k, "r."):
			if gone {
				delete(c.alive, k[2:])
			} else {
				// A heartbeat counts from when this relay heard it, so
				// clocks need not agree. One read at start counts from
				// when it was written (the NATS server's clock), so a
				// dead relay's last heartbeat is already old.
				seen := time.Now()
				if replayed && e.Created().Before(seen) {
					seen = e.Created()
				}
				c.alive[k[2:]] = seen
			}
		case strings.HasPrefix(k, "d."):
			if a, ok := queue.ParseToken(k[2:]); ok {
				if gone {
					delete(c.where, a)
				} else {
					c.where[a] = string(val)
				}
			}
		}
		c.mu.Unlock()
	}
}

// subscribe listens for control messages to every relay and to this one.
func (c *Cluster) subscribe() ([]*nats.Subscription, error) {
	var subs []*nats.Subscription
	add := func(subj string, fn func(a queue.Address, m *nats.Msg)) error {
		prefix := strings.TrimSuffix(subj, ">")
		s, err := c.nc.Subscribe(subj, func(m *nats.Msg) {
			origin := m.Header.Get("Ph-Origin")
			if origin == c.id {
				return // our own broadcast
			}
			if !c.controlOK(m.Subject, origin, m.Header.Get(macHeader), m.Data) {
				c.rejected("control")
				return
			}
			if a, ok := queue.ParseToken(strings.TrimPrefix(m.Subject, prefix)); ok {
				fn(a, m)
			}
		})
		if err != nil {
			return fmt.Errorf("natscluster: subscribe %s: %w", subj, err)
		}
		subs = append(subs, s)
		return nil
	}
	h := func() relay.ClusterHandlers {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.handler
	}
	err := errors.Join(
		add("ph.ctl.close.>", func(a queue.Address, _ *nats.Msg) { h().CloseDevice(a) }),
		add("ph.ctl.notify.>", func(a queue.Address, m *nats.Msg) { h().Notify(a, m.Data) }),
		add("ph.relay."+c.id+".offer.>", func(a queue.Address, m *nats.Msg) { h().Offer(a, m.Data) }),
	)
	if err != nil {
		return nil, err
	}
	return subs, c.nc.Flush()
}

func (c *Cluster) publish(subj string, data []byte) {
	m := nats.NewMsg(subj)
	m.Header.Set("Ph-Origin", c.id)
	m.Header.Set(macHeader, c.controlTag(subj, c.id, data))
	m.Data = data
	if err := c.nc.PublishMsg(m); err != nil {
		c.log.Warn("cluster publish failed", "err", err)
	}
}

func (c *Cluster) lock(a queue.Address) func() {
	m := &c.locks[int(a.Account[0])%len(c.locks)]
	m.Lock()
	return m.Unlock
}

// Reconnected tells the cluster that this relay's NATS connection came
// back: control messages sent meanwhile are lost, so the relay checks its
// connections again. Call it from nats.ReconnectHandler.
func (c *Cluster) Reconnected() {
	c.mu.Lock()
	h := c.handler.Resync
	c.mu.Unlock()
	if h != nil {
		go h()
	}
}

// sweep removes the heartbeat and presence records of relays dead for
// long (any relay may; it is idempotent), so they do not pile up with
// every crash.
func (c *Cluster) sweep(ctx context.Context) {
	const long = 6 // expiries
	c.mu.Lock()
	var dead []string
	for r, seen := range c.alive {
		if r != c.id && time.Since(seen) > long*c.cfg.Expiry {
			dead = append(dead, r)
		}
	}
	var orphans []queue.Address
	for a, r := range c.where {
		if slices.Contains(dead, r) {
			orphans = append(orphans, a)
		}
	}
	c.mu.Unlock()
	for _, a := range orphans {
		// Only if it still names the dead relay (compare-and-delete).
		e, err := c.kv.Get(ctx, deviceKey(a))
		if err != nil {
			continue
		}
		if r, ok := c.openPresence(e.Key(), e.Value()); ok && slices.Contains(dead, string(r)) {
			_ = c.kv.Delete(ctx, deviceKey(a), jetstream.LastRevision(e.Revision()))
		}
	}
	for _, r := range dead {
		if err := c.kv.Purge(ctx, "r."+r); err == nil {
			c.mu.Lock()
			delete(c.alive, r)
			c.mu.Unlock()
		}
	}
}

// SessionStarted records that a has a receiving session here.
func (c *Cluster) SessionStarted(a queue.Address) {
	defer c.lock(a)()
	c.mu.Lock()
	c.mine[a]++
	first := c.mine[a] == 1
	c.where[a] = c.id
	c.mu.Unlock()
	if first {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := c.kv.Put(ctx, deviceKey(a), c.sealPresence(deviceKey(a), []byte(c.id))); err != nil {
			c.log.Warn("cluster: record presence failed", "err", err)
		}
	}
}

// SessionEnded records that one of a's receiving sessions here ended. The
// presence record goes when the last one does, unless another relay has
// taken it over meanwhile.
func (c *Cluster) SessionEnded(a queue.Address) {
	defer c.lock(a)()
	c.mu.Lock()
	c.mine[a]--
	last := c.mine[a] <= 0
	if last {
		delete(c.mine, a)
	}
	c.mu.Unlock()
	if !last {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e, err := c.kv.Get(ctx, deviceKey(a))
	if err != nil {
		return
	}
	if r, ok := c.openPresence(e.Key(), e.Value()); !ok || string(r) != c.id {
		return
	}
	if err := c.kv.Delete(ctx, deviceKey(a), jetstream.LastRevision(e.Revision())); err != nil {
		c.log.Debug("cluster: presence changed meanwhile", "err", err)
	}
}

// Receiving reports whether a has a receiving session on another relay
// that is alive.
func (c *Cluster) Receiving(a queue.Address) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.where[a]
	if !ok || r == c.id {
		return false
	}
	seen, ok := c.alive[r]
	return ok && time.Since(seen) < c.cfg.Expiry
}

// CloseDevice has every other relay close a's connections.
func (c *Cluster) CloseDevice(a queue.Address) { c.publish("ph.ctl.close."+a.Token(), nil) }

// Notify sends an advisory event to a's sessions on other relays.
func (c *Cluster) Notify(a queue.Address, event []byte) {
	c.publish("ph.ctl.notify."+a.Token(), event)
}

// Offer sends an online-only envelope frame to the relay holding a's
// receiving session, if another live relay holds one.
func (c *Cluster) Offer(a queue.Address, frame []byte) bool {
	c.mu.Lock()
	r := c.where[a]
	c.mu.Unlock()
	if !c.Receiving(a) {
		return false
	}
	c.publish("ph.relay."+r+".offer."+a.Token(), frame)
	return true
}

var _ relay.Cluster = (*Cluster)(nil)
