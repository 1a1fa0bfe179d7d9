package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/spec"
)

// loadConfig is what one load run does.
type loadConfig struct {
	Devices      int           `json:"devices"`       // registered recipient devices
	Connected    int           `json:"connected"`     // of them, connected and receiving
	Senders      int           `json:"senders"`       // concurrent senders, each on its own connection
	Rate         float64       `json:"rate"`          // messages/s in all; 0: as fast as the window allows
	Window       int           `json:"window"`        // messages in flight per sender (sent, not yet delivered)
	Size         int           `json:"size"`          // ciphertext bytes per device
	Fanout       int           `json:"fanout"`        // recipients of one send (multi_send when above 1)
	OfflineShare float64       `json:"offline_share"` // share of sends to offline devices
	Duration     time.Duration `json:"duration"`
	Count        int64         `json:"count"` // stop after this many accepted sends (0: run for Duration)
	DrainDevices int           `json:"drain_devices"`
	RecvWindow   int           `json:"recv_window"`
	BatchAcks    bool          `json:"batch_acks"` // ack from a second goroutine, several seqs per frame
}

// payloadHeader is the part of every ciphertext the generator reads back:
// the scheduled send time (ns since the run's base), the sender and the
// run (envelopes left over from an earlier run are acked, not counted).
const payloadHeader = 16

// run is one load run in progress.
type run struct {
	cfg       loadConfig
	opts      *client.Options // the relay recipients and drained devices use (-recv-ready, else the senders')
	log       func(string, ...any)
	base      time.Time
	id        uint32
	stale     atomic.Int64 // envelopes from earlier runs
	delivery  hist         // scheduled send time to delivery
	accept    hist         // scheduled send time to "accepted"
	accepted  atomic.Int64
	envelopes atomic.Int64 // device envelopes accepted for connected devices
	delivered atomic.Int64
	lastDeliv atomic.Int64 // ns since base
	errMu     sync.Mutex
	errs      map[string]int64
	senders   []*sender
	connected []*device
	offline   []*device
	hitMu     sync.Mutex
	hit       map[int]bool // offline devices that got mail
}

type sender struct {
	dev    *device
	conn   *client.Conn
	tokens chan struct{} // the window, in deliveries
}

func (r *run) now() int64 { return int64(time.Since(r.base)) }

func (r *run) fail(err error) {
	name := "network"
	if code := client.ErrorCode(err); code != 0 {
		name = spec.Code(code).String()
	} else if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return
	}
	r.errMu.Lock()
	if r.errs[name] == 0 {
		r.log("first %s error: %v", name, err)
	}
	r.errs[name]++
	r.errMu.Unlock()
}

// transports spreads connections over a few shared UDP sockets, so that
// thousands of connections need neither thousands of file descriptors
// nor thousands of ephemeral ports.
type transports struct {
	pool []*quic.Transport
	next int
}

func newTransports(n int, relayAddr string) (*transports, error) {
	raddr, err := net.ResolveUDPAddr("udp", relayAddr)
	if err != nil {
		return nil, err
	}
	// As the client does: the family of the relay's address, on loopback
	// when the relay is.
	laddr := &net.UDPAddr{IP: net.IPv4zero}
	if raddr.IP.To4() == nil {
		laddr.IP = net.IPv6zero
	}
	if raddr.IP.IsLoopback() {
		laddr.IP = raddr.IP
	}
	t := &transports{}
	for range n {
		udp, err := net.ListenUDP("udp", laddr)
		if err != nil {
			t.close()
			return nil, err
		}
		t.pool = append(t.pool, &quic.Transport{Conn: udp})
	}
	return t, nil
}

func (t *transports) options(o *client.Options) *client.Options {
	c := *o
	c.Transport = t.pool[t.next%len(t.pool)]
	t.next++
	return &c
}

func (t *transports) close() {
	for _, tr := range t.pool {
		tr.Close()
		tr.Conn.Close()
	}
}

// connect dials devs concurrently, 64 at a time, and, with auth,
// authenticates them, trying each up to 5 times. It says how far it got
// every second (through the registrar's progress) and stops at the first
// device that fails 5 times.
func connect(ctx context.Context, tp *transports, opts *client.Options, devs []*device, window int, auth bool, reg *registrar) ([]*client.Conn, error) {
	conns := make([]*client.Conn, len(devs))
	var failed atomic.Pointer[error]
	var done, retries atomic.Int64
	stop := reg.progress(ctx, "connected", &done, int64(len(devs)))
	defer stop()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i, d := range devs {
		if failed.Load() != nil || ctx.Err() != nil {
			break
		}
		o := tp.options(opts)
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			var c *client.Conn
			var err error
			// A relay busy with a connection storm refuses some (quic-go's
			// accept queue is full); devices retry, and so does this.
			for attempt := 1; ; attempt++ {
				c, err = client.Dial(ctx, o)
				if err == nil && auth {
					if _, err = c.Authenticate(ctx, d.creds(), window); err != nil {
						c.Close()
					}
				}
				if err == nil || attempt == 5 || ctx.Err() != nil {
					break
				}
				retries.Add(1)
				time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
			}
			if err != nil {
				err = fmt.Errorf("connect %s: %w", shortID(d), err)
				failed.CompareAndSwap(nil, &err)
				return
			}
			conns[i] = c
			done.Add(1)
		})
	}
	wg.Wait()
	if n := retries.Load(); n > 0 {
		reg.log("%d connection attempts were refused or failed and tried again", n)
	}
	if p := failed.Load(); p != nil || ctx.Err() != nil {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
		if p != nil {
			return nil, *p
		}
		return nil, ctx.Err()
	}
	return conns, nil
}

// runLoad registers what it needs, connects, sends until the duration or
// count is reached (or ctx ends), waits for what is in flight, then
// connects the offline devices that got mail and times their drain.
func runLoad(ctx context.Context, opts, recvOpts *client.Options, cfg loadConfig, reg *registrar, stateFile string, log func(string, ...any)) (*report, error) {
	devs, err := reg.devices(ctx, cfg.Devices+cfg.Senders, stateFile)
	if err != nil {
		return nil, err
	}
	recipients, senderDevs := devs[:cfg.Devices], devs[cfg.Devices:]
	tp, err := newTransports(min(64, cfg.Connected+cfg.Senders+1), opts.Addr)
	if err != nil {
		return nil, err
	}
	defer tp.close()
	log("connecting %d receivers and %d senders", cfg.Connected, cfg.Senders)
	recvConns, err := connect(ctx, tp, recvOpts, recipients[:cfg.Connected], cfg.RecvWindow, true, reg)
	if err != nil {
		return nil, err
	}
	defer closeAll(recvConns)
	sendConns, err := connect(ctx, tp, opts, senderDevs, 0, true, reg)
	if err != nil {
		return nil, err
	}
	defer closeAll(sendConns)

	r := &run{cfg: cfg, opts: recvOpts, log: log, errs: map[string]int64{}, connected: recipients[:cfg.Connected], offline: recipients[cfg.Connected:], hit: map[int]bool{}}
	for i, d := range senderDevs {
		s := &sender{dev: d, conn: sendConns[i], tokens: make(chan struct{}, cfg.Window*cfg.Fanout)}
		for range cap(s.tokens) {
			s.tokens <- struct{}{}
		}
		r.senders = append(r.senders, s)
	}
	r.base = time.Now()
	r.id = mrand.Uint32()
	recvCtx, stopRecv := context.WithCancel(context.Background())
	var recvWG sync.WaitGroup
	for _, c := range recvConns {
		recvWG.Go(func() { r.receive(recvCtx, c) })
	}

	// schedCtx ends the scheduling of new sends (at the duration, or
	// earlier at the count); sends under way finish, so every accepted
	// one is counted.
	schedCtx, stopSched := context.WithTimeout(ctx, cfg.Duration)
	stopProgress := r.progress(schedCtx)
	// Sends under way get 10 s after scheduling ends, so a stalled relay
	// cannot hold the run past its deadline for ever.
	sendCtx, cancelSends := context.WithCancel(ctx)
	defer cancelSends()
	sent := make(chan struct{})
	go func() {
		<-schedCtx.Done()
		select {
		case <-time.After(10 * time.Second):
			cancelSends()
		case <-sent:
		}
	}()
	var sendWG sync.WaitGroup
	var rr atomic.Int64
	for i, s := range r.senders {
		sendWG.Go(func() { r.sendLoop(schedCtx, sendCtx, stopSched, i, s, &rr, &sendWG) })
	}
	sendWG.Wait()
	close(sent)
	sendElapsed := time.Since(r.base)
	stopSched()
	stopProgress()

	// Wait (up to 10 s) for what was accepted to be delivered.
	deadline := time.Now().Add(10 * time.Second)
	for r.delivered.Load() < r.envelopes.Load() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	// End the sessions: the receivers return with their acks written (the
	// batching ackers flush first), then Finish asks the relay to make
	// them durable. Finish cannot wait for the relay's answer once Next's
	// read was cancelled, so an ack still in flight may be lost; the next
	// run then gets that envelope again and counts it as left over.
	stopRecv()
	recvWG.Wait()
	finishAll(recvConns)

	rep := r.report(sendElapsed)
	if cfg.DrainDevices > 0 && len(r.hit) > 0 && ctx.Err() == nil {
		dctx, cancel := context.WithTimeout(ctx, time.Minute)
		d, err := r.drain(dctx, tp)
		cancel()
		if err != nil {
			log("drain: %v", err) // the load figures stand
		}
		rep.Drain = d
	}
	return rep, nil
}

// finishAll finishes the conns' sessions (at most 5 s in all).
func finishAll(conns []*client.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() { _ = c.Finish(ctx) })
	}
	wg.Wait()
}

func closeAll(conns []*client.Conn) {
	for _, c := range conns {
		c.Close()
	}
}

// sendLoop sends for one sender: on schedule (rate) or as fast as its
// window allows. Each send runs in its own goroutine, so up to the window
// may be outstanding at once.
func (r *run) sendLoop(ctx, sendCtx context.Context, stop context.CancelFunc, idx int, s *sender, rr *atomic.Int64, wg *sync.WaitGroup) {
	cfg := r.cfg
	var interval time.Duration
	next := time.Duration(0)
	if cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(cfg.Senders) / cfg.Rate)
		next = interval * time.Duration(idx) / time.Duration(cfg.Senders)
	}
	filler := make([]byte, cfg.Size)
	_, _ = rand.Read(filler)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for ctx.Err() == nil {
		var sched time.Duration
		if interval > 0 {
			if wait := next - time.Since(r.base); wait > 0 {
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-ctx.Done():
					return
				}
			}
			sched = next
			next += interval
		}
		for range cfg.Fanout {
			select {
			case <-s.tokens:
			case <-ctx.Done():
				return
			}
		}
		if interval == 0 {
			// As fast as possible: the send is due once the window has
			// room (waiting for it is not the relay's latency).
			sched = time.Since(r.base)
		}
		content := make([]byte, cfg.Size)
		copy(content, filler)
		binary.BigEndian.PutUint64(content, uint64(sched))
		binary.BigEndian.PutUint32(content[8:], uint32(idx))
		binary.BigEndian.PutUint32(content[12:], r.id)
		offline := cfg.OfflineShare > 0 && len(r.offline) > 0 && (cfg.Connected == 0 || mrand.Float64() < cfg.OfflineShare)
		wg.Go(func() {
			if r.sendOne(sendCtx, s, content, offline, rr) && cfg.Count > 0 && r.accepted.Load() >= cfg.Count {
				stop()
			}
		})
	}
}

// sendOne sends one message to Fanout recipients and reports whether the
// relay accepted it.
func (r *run) sendOne(ctx context.Context, s *sender, content []byte, offline bool, rr *atomic.Int64) bool {
	cfg := r.cfg
	pool, n := r.offline, len(r.offline)
	if !offline {
		n = cfg.Connected
	}
	msgID := make([]byte, spec.ClientMessageIDSize)
	_, _ = rand.Read(msgID)
	m := &client.MultiMessage{ClientMessageID: msgID}
	first := int(rr.Add(int64(cfg.Fanout))) - cfg.Fanout
	var targets []int
	for k := range cfg.Fanout {
		i := (first + k) % n
		targets = append(targets, i)
		var d *device
		if offline {
			d = pool[i]
		} else {
			d = r.recipient(i)
		}
		m.Accounts = append(m.Accounts, client.AccountMessage{Recipient: d.Account, Devices: []client.DeviceMessage{{DeviceID: d.Device, Type: 2, Content: content}}})
	}
	var err error
	if cfg.Fanout == 1 {
		a := m.Accounts[0]
		_, err = s.conn.Send(ctx, &client.Message{Recipient: a.Recipient, ClientMessageID: msgID, Devices: a.Devices})
	} else {
		_, err = s.conn.SendMulti(ctx, m)
	}
	release := func() {
		for range cfg.Fanout {
			select {
			case s.tokens <- struct{}{}:
			default: // a delivery of it came back already
			}
		}
	}
	if err != nil {
		if ctx.Err() == nil {
			r.fail(err) // not a send Ctrl-C cut short
			// Back off as a client would (a full queue, a limit), so
			// that refusals do not turn into a busy loop.
			time.Sleep(10 * time.Millisecond)
		}
		release()
		return false
	}
	r.accept.record(time.Duration(r.now() - int64(binary.BigEndian.Uint64(content))))
	r.accepted.Add(1)
	if offline {
		r.hitMu.Lock()
		for _, i := range targets {
			r.hit[i] = true
		}
		r.hitMu.Unlock()
		release()
	} else {
		r.envelopes.Add(int64(cfg.Fanout))
	}
	return true
}

func (r *run) recipient(i int) *device { return r.connected[i] }

// receive reads envelopes on one connected device, records their latency,
// frees the sender's window and acks.
func (r *run) receive(ctx context.Context, c *client.Conn) {
	ack := func(seq uint64) error { return c.Ack(seq) }
	if r.cfg.BatchAcks {
		acks := newAcker(c)
		defer acks.stop()
		ack = acks.ack
	}
	for {
		ev, err := c.Next(ctx)
		if err != nil {
			return
		}
		if ev.Kind != client.EventEnvelope {
			continue
		}
		env := ev.Envelope
		if len(env.Content) < payloadHeader || binary.BigEndian.Uint32(env.Content[12:]) != r.id {
			r.stale.Add(1)
		} else {
			now := r.now()
			r.delivery.record(time.Duration(now - int64(binary.BigEndian.Uint64(env.Content))))
			r.lastDeliv.Store(now)
			if si := int(binary.BigEndian.Uint32(env.Content[8:])); si < len(r.senders) {
				select {
				case r.senders[si].tokens <- struct{}{}:
				default:
				}
			}
			r.delivered.Add(1)
		}
		if err := ack(env.Seq); err != nil {
			return
		}
	}
}

// acker acks from its own goroutine: the seqs that pile up while one ack
// frame is being written go out together in the next, as a client that
// reads on while it acks would send them.
type acker struct {
	c    *client.Conn
	mu   sync.Mutex
	seqs []uint64
	err  error
	wake chan struct{}
	done chan struct{}
}

func newAcker(c *client.Conn) *acker {
	a := &acker{c: c, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go a.run()
	return a
}

func (a *acker) ack(seq uint64) error {
	a.mu.Lock()
	a.seqs = append(a.seqs, seq)
	err := a.err
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
	return err
}

func (a *acker) run() {
	defer close(a.done)
	for range a.wake {
		a.mu.Lock()
		seqs := a.seqs
		a.seqs = nil
		a.mu.Unlock()
		if len(seqs) == 0 {
			continue
		}
		if err := a.c.Ack(seqs...); err != nil {
			a.mu.Lock()
			a.err = err
			a.mu.Unlock()
		}
	}
}

func (a *acker) stop() {
	close(a.wake)
	<-a.done
}

// progress prints a line a second while the run sends.
func (r *run) progress(ctx context.Context) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var lastA, lastD int64
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				a, d := r.accepted.Load(), r.delivered.Load()
				r.log("%5.0fs  accepted %d (%d/s)  delivered %d (%d/s)  p99 so far %v  errors %d",
					time.Since(r.base).Seconds(), a, a-lastA, d, d-lastD, r.delivery.quantile(0.99).Round(time.Microsecond), r.errorCount())
				lastA, lastD = a, d
			}
		}
	}()
	return func() { cancel(); <-done }
}

func (r *run) errorCount() int64 {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	var n int64
	for _, v := range r.errs {
		n += v
	}
	return n
}

// drain connects offline devices that got mail, at most DrainDevices of
// them at once, and times each from its session being open to "queue
// drained".
func (r *run) drain(ctx context.Context, tp *transports) (*drainReport, error) {
	var idx []int
	for i := range r.hit {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	if len(idx) > r.cfg.DrainDevices {
		idx = idx[:r.cfg.DrainDevices]
	}
	r.log("connecting %d offline device%s to drain their backlog", len(idx), plural(len(idx)))
	times := make([]time.Duration, len(idx))
	counts := make([]int64, len(idx))
	var wg sync.WaitGroup
	var firstErr error
	var once sync.Once
	for k, i := range idx {
		d := r.offline[i]
		o := tp.options(r.opts)
		wg.Go(func() {
			c, err := client.Dial(ctx, o)
			if err == nil {
				defer c.Close()
				_, err = c.Authenticate(ctx, d.creds(), r.cfg.RecvWindow)
			}
			start := time.Now() // connected: the drain starts
			for err == nil {
				var ev *client.Event
				if ev, err = c.Next(ctx); err != nil {
					break
				}
				if ev.Kind == client.EventDrained {
					break
				}
				if ev.Kind == client.EventEnvelope {
					if c := ev.Envelope.Content; len(c) >= payloadHeader && binary.BigEndian.Uint32(c[12:]) == r.id {
						counts[k]++
					}
					err = c.Ack(ev.Envelope.Seq)
				}
			}
			if err != nil {
				once.Do(func() { firstErr = fmt.Errorf("drain %s: %w", shortID(d), err) })
				return
			}
			times[k] = time.Since(start)
			_ = c.Finish(ctx)
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	sorted := append([]time.Duration(nil), times...)
	sort.Slice(sorted, func(a, b int) bool { return sorted[a] < sorted[b] })
	var total int64
	for _, n := range counts {
		total += n
	}
	return &drainReport{Devices: len(idx), Messages: total, P50: ms(sorted[len(sorted)/2]), Max: ms(sorted[len(sorted)-1])}, nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
