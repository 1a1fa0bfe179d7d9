package push

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Service sends content-free pushes to devices that are not connected.
// Create it with New, start its workers with Run.
type Service struct {
	cfg     Config
	store   *Store
	log     *slog.Logger
	m       *metrics
	senders map[Provider]sender
	now     func() time.Time

	// jobs holds a bounded queue per provider, each with its own
	// workers, so a provider that hangs cannot starve the other.
	jobs map[Provider]chan *job

	mu       sync.Mutex
	recent   map[Device]*entry // devices pushed (or looked up) within the window
	retrying int               // jobs waiting for a retry timer
	closed   bool

	// attempted, if set (by tests), is called after every attempt.
	attempted func(Device, result)
}

// noToken marks an entry for a device that has no usable token.
const noToken Provider = 255

// entry is a device's coalescing state.
type entry struct {
	until    time.Time
	provider Provider // 0 while the token is looked up; noToken if it has none
	pending  int      // notifies coalesced while the token was looked up
	active   bool     // a push is queued, in flight or waiting to retry
}

// job is one push to one device, across its retries.
type job struct {
	dev      Device
	tok      Token
	e        *entry
	attempt  int
	deadline time.Time
	expires  time.Time
}

// New returns a push service on store with the providers cfg configures.
// A provider's credentials are checked here, so a broken key file is an
// error now rather than at the first push. Metrics go on reg (nil: none).
func New(ctx context.Context, cfg Config, store *Store, log *slog.Logger, reg prometheus.Registerer) (*Service, error) {
	if store == nil {
		return nil, errors.New("push: a token store is required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	s := &Service{
		cfg:     cfg,
		store:   store,
		log:     log,
		senders: make(map[Provider]sender),
		now:     time.Now,
		jobs:    make(map[Provider]chan *job),
		recent:  make(map[Device]*entry),
	}
	if cfg.Expiry > maxExpiry {
		return nil, fmt.Errorf("push: expiry %v is over the providers' maximum of %v", cfg.Expiry, maxExpiry)
	}
	if cfg.APNs != nil {
		a, err := newAPNs(cfg.APNs)
		if err != nil {
			return nil, err
		}
		s.senders[APNs] = a
		s.jobs[APNs] = make(chan *job, cfg.QueueSize)
	}
	if cfg.FCM != nil {
		f, err := newFCM(ctx, cfg.FCM)
		if err != nil {
			return nil, err
		}
		s.senders[FCM] = f
		s.jobs[FCM] = make(chan *job, cfg.QueueSize)
	}
	m, err := newMetrics(reg, func() float64 {
		n := 0
		for _, ch := range s.jobs {
			n += len(ch)
		}
		return float64(n)
	})
	if err != nil {
		return nil, fmt.Errorf("push: register metrics: %w", err)
	}
	s.m = m
	return s, nil
}

// Enabled reports whether the service has credentials for p.
func (s *Service) Enabled(p Provider) bool {
	_, ok := s.senders[p]
	return ok
}

// SetToken validates t and stores it as d's token, moving it off any
// other device that had it (a token wakes one device). It returns an error
// wrapping ErrInvalidToken for a malformed token and ErrProviderOff for a
// provider (or APNs topic) this service does not push through.
func (s *Service) SetToken(ctx context.Context, d Device, t Token) error {
	if err := t.Validate(); err != nil {
		return err
	}
	if !s.Enabled(t.Provider) {
		return fmt.Errorf("%w: %s", ErrProviderOff, t.Provider)
	}
	if t.Provider == APNs && !s.cfg.APNs.allows(t.Topic) {
		return fmt.Errorf("%w: APNs topic %q is not served here", ErrProviderOff, t.Topic)
	}
	from, moved, err := s.store.set(ctx, d, t)
	if err != nil {
		return err
	}
	s.forget(d)
	if moved {
		s.forget(from) // its push waiting for a retry is dropped
	}
	return nil
}

// DeleteToken removes d's token; d gets no more pushes (a push already
// waiting to be retried is dropped).
func (s *Service) DeleteToken(ctx context.Context, d Device) error {
	if err := s.store.Delete(ctx, d); err != nil {
		return err
	}
	s.forget(d)
	return nil
}

// forget drops d's coalescing entry, so a new token is used from the next
// mail on and a retry for the old token is dropped.
func (s *Service) forget(d Device) {
	s.mu.Lock()
	delete(s.recent, d)
	s.mu.Unlock()
}

// Connected tells the service that d has a session: its coalescing window
// resets, and a push still waiting to be retried is dropped.
func (s *Service) Connected(d Device) {
	s.mu.Lock()
	delete(s.recent, d)
	s.mu.Unlock()
}

// Notify wakes d, which has new mail and no session, unless it was pushed
// within the window. It never waits for a provider: it reads the token
// and the token's index record (two Pebble reads per device per window,
// a few µs from the block cache) and hands the push to the provider's queue, or drops and counts
// it when the queue is full.
func (s *Service) Notify(d Device) {
	if len(s.senders) == 0 {
		return
	}
	now := s.now()
	s.mu.Lock()
	if e := s.recent[d]; e != nil && (now.Before(e.until) || e.active) {
		switch e.provider {
		case 0:
			e.pending++
		case noToken:
		default:
			s.m.coalesced.WithLabelValues(e.provider.String()).Inc()
		}
		s.mu.Unlock()
		return
	}
	e := &entry{until: now.Add(s.cfg.Window)}
	s.recent[d] = e
	s.mu.Unlock()

	tok, err := s.store.Get(context.Background(), d)
	if err != nil && !errors.Is(err, ErrNoToken) {
		s.log.Warn("push: read token", "err", err)
	}
	usable := err == nil && s.Enabled(tok.Provider)

	s.mu.Lock()
	defer s.mu.Unlock()
	if !usable {
		e.provider = noToken
		return
	}
	e.provider = tok.Provider
	if e.pending > 0 {
		s.m.coalesced.WithLabelValues(tok.Provider.String()).Add(float64(e.pending))
		e.pending = 0
	}
	if s.recent[d] != e || s.closed {
		return // the device connected meanwhile
	}
	j := &job{dev: d, tok: tok, e: e, deadline: now.Add(s.cfg.RetryFor), expires: now.Add(s.cfg.Expiry)}
	if s.enqueueLocked(j) {
		s.m.queued.WithLabelValues(tok.Provider.String()).Inc()
	}
}

// enqueueLocked hands j to its provider's workers, or drops it and frees
// the device's window so later mail can try again. It reports whether j
// was queued.
func (s *Service) enqueueLocked(j *job) bool {
	select {
	case s.jobs[j.tok.Provider] <- j:
		j.e.active = true
		return true
	default:
		s.m.dropped.WithLabelValues(j.tok.Provider.String()).Inc()
		j.e.active = false
		if s.recent[j.dev] == j.e {
			delete(s.recent, j.dev)
		}
		return false
	}
}

// Run sends queued pushes with cfg.Workers workers until ctx ends, and
// forgets expired coalescing entries. Pushes still queued then are
// dropped: the devices get their mail when they next connect.
func (s *Service) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, jobs := range s.jobs {
		for range s.cfg.Workers {
			wg.Go(func() {
				for {
					select {
					case <-ctx.Done():
						return
					case j := <-jobs:
						if ctx.Err() != nil {
							return
						}
						s.attempt(ctx, j)
					}
				}
			})
		}
	}
	t := time.NewTicker(min(max(s.cfg.Window, time.Second), time.Minute))
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.sweep()
		case <-ctx.Done():
			s.mu.Lock()
			s.closed = true
			s.mu.Unlock()
			wg.Wait()
			for _, snd := range s.senders {
				snd.close()
			}
			return
		}
	}
}

// sweep drops coalescing entries whose window has passed.
func (s *Service) sweep() {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for d, e := range s.recent {
		// An entry whose token is being read (provider 0) belongs to a
		// Notify in progress.
		if !e.active && e.provider != 0 && !now.Before(e.until) {
			delete(s.recent, d)
		}
	}
}

// attempt makes one attempt at j and decides what follows.
func (s *Service) attempt(ctx context.Context, j *job) {
	s.mu.Lock()
	stale := s.recent[j.dev] != j.e
	s.mu.Unlock()
	if stale {
		return // the device connected: it fetches its mail itself
	}
	actx, cancel := context.WithTimeout(ctx, s.cfg.AttemptTimeout)
	ttl := max(j.expires.Sub(s.now()).Round(time.Second), time.Second)
	r := s.senders[j.tok.Provider].send(actx, j.tok, j.expires, ttl)
	cancel()
	reported := false
	report := func() {
		if s.attempted != nil && !reported {
			reported = true
			s.attempted(j.dev, r)
		}
	}
	defer report() // after the outcome's effects, so tests see them
	p := j.tok.Provider.String()
	j.attempt++
	if ctx.Err() != nil {
		// Shutting down: the attempt was cut short, not refused. The
		// device gets its mail when it next connects.
		s.finish(j)
		return
	}
	switch r.outcome {
	case sent:
		s.m.sent.WithLabelValues(p).Inc()
		// The window runs from the push that got through.
		s.mu.Lock()
		j.e.until = s.now().Add(s.cfg.Window)
		s.mu.Unlock()
	case dead:
		s.m.failed.WithLabelValues(p, r.reason).Inc()
		removed, err := s.store.DeleteIf(context.WithoutCancel(ctx), j.dev, j.tok)
		switch {
		case err != nil:
			s.log.Warn("push: delete dead token", "provider", p, "err", err)
		case removed:
			s.m.removed.WithLabelValues(p).Inc()
			s.log.Info("push: token removed", "provider", p, "reason", r.reason, "token", j.tok)
		}
	case retry:
		delay := s.backoff(j.attempt, r.after)
		if j.attempt < s.cfg.MaxAttempts && s.now().Add(delay).Before(j.deadline) {
			report() // before the retry can run and report
		}
		if j.attempt < s.cfg.MaxAttempts && s.now().Add(delay).Before(j.deadline) && s.scheduleRetry(j, delay) {
			s.m.retries.WithLabelValues(p).Inc()
			return // still active
		}
		s.m.failed.WithLabelValues(p, r.reason).Inc()
		s.log.Warn("push: gave up", "provider", p, "reason", r.reason, "attempts", j.attempt)
	case failed:
		s.m.failed.WithLabelValues(p, r.reason).Inc()
		s.log.Warn("push: refused", "provider", p, "reason", r.reason)
	}
	s.finish(j)
}

// finish marks j's device as having no push under way.
func (s *Service) finish(j *job) {
	s.mu.Lock()
	j.e.active = false
	s.mu.Unlock()
}

// scheduleRetry puts j back in its queue after delay, unless as many jobs
// as a queue holds are already waiting for a retry.
func (s *Service) scheduleRetry(j *job, delay time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.retrying >= s.cfg.QueueSize {
		return false
	}
	s.retrying++
	time.AfterFunc(delay, func() { s.requeue(j) })
	return true
}

// backoff is the delay before retry n (1-based): Backoff doubled each
// time with ±25% jitter, or longer if the provider asked.
func (s *Service) backoff(n int, after time.Duration) time.Duration {
	d := s.cfg.Backoff << min(n-1, 16)
	d += time.Duration((rand.Float64() - 0.5) * 0.5 * float64(d))
	return max(d, after)
}

// requeue puts a job that waited for its retry back in the queue, unless
// the device connected or the service stopped.
func (s *Service) requeue(j *job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retrying--
	if s.recent[j.dev] != j.e || s.closed {
		j.e.active = false
		return
	}
	s.enqueueLocked(j)
}
