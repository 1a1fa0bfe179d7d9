package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pigeonhole/pigeonhole/relay/client"
)

// idleReport is what holding idle connections cost the relay, read from
// its /metrics (the process collector reads /proc/self: RSS and CPU; the
// Go collector gives the heap).
type idleReport struct {
	Connections    int     `json:"connections"`
	ConnectSeconds float64 `json:"connect_seconds"`
	HoldSeconds    float64 `json:"hold_seconds"`
	RSSBefore      int64   `json:"rss_before_bytes"`
	RSSAfter       int64   `json:"rss_after_bytes"`
	HeapBefore     int64   `json:"heap_before_bytes"`
	HeapAfter      int64   `json:"heap_after_bytes"`
	StackBefore    int64   `json:"stack_before_bytes"`
	StackAfter     int64   `json:"stack_after_bytes"`
	StackPerConn   float64 `json:"stack_per_conn_bytes"`
	RSSPerConn     float64 `json:"rss_per_conn_bytes"`
	HeapPerConn    float64 `json:"heap_per_conn_bytes"`
	Goroutines     int64   `json:"relay_goroutines"`
	GoroutinesBase int64   `json:"relay_goroutines_before"`
	GoroutinesPer  float64 `json:"relay_goroutines_per_conn"`
	Sockets        int     `json:"sockets"`
	HeapAfterGC    bool    `json:"heap_after_gc"`  // the relay serves pprof: each heap reading follows a GC
	IdleCPU        float64 `json:"idle_cpu_cores"` // relay CPU while holding them, in cores
}

func (r *idleReport) print(t func(string, ...any)) {
	t("idle connections held       %d (connected in %.1f s)", r.Connections, r.ConnectSeconds)
	t("relay RSS                   %.1f MiB -> %.1f MiB: %.1f KiB per connection", mib(r.RSSBefore), mib(r.RSSAfter), r.RSSPerConn/1024)
	t("relay Go heap in use        %.1f MiB -> %.1f MiB: %.1f KiB per connection", mib(r.HeapBefore), mib(r.HeapAfter), r.HeapPerConn/1024)
	t("relay goroutine stacks      %.1f MiB -> %.1f MiB: %.1f KiB per connection", mib(r.StackBefore), mib(r.StackAfter), r.StackPerConn/1024)
	t("relay goroutines            %d -> %d: %.2f per connection", r.GoroutinesBase, r.Goroutines, r.GoroutinesPer)
	t("client UDP sockets          %d (heap read after a GC: %v)", r.Sockets, r.HeapAfterGC)
	t("relay CPU while idle        %.3f cores over %.0f s", r.IdleCPU, r.HoldSeconds)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// scrape reads the relay's metrics: every series without labels, by name.
func scrape(ctx context.Context, addr string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("read the relay's metrics (start it with -metrics): %w", err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, v, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			out[name] = f
		}
	}
	return out, sc.Err()
}

// gcThenScrape scrapes the relay's metrics after asking it for a garbage
// collection through its profiler (/debug/pprof/heap?gc=1, served with
// serve -pprof), so the heap figure is live memory rather than garbage
// waiting for the next cycle. gc reports whether the relay collected.
func gcThenScrape(ctx context.Context, addr string) (m map[string]float64, gc bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/debug/pprof/heap?gc=1", nil)
	if err != nil {
		return nil, false, err
	}
	if resp, err := http.DefaultClient.Do(req); err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		gc = resp.StatusCode == http.StatusOK
	}
	m, err = scrape(ctx, addr)
	return m, gc, err
}

// idleConfig is what -mode idle holds.
type idleConfig struct {
	n       int           // connections
	hold    time.Duration // how long
	window  int           // each session's receive window
	auth    bool          // false: bare QUIC connections
	sockets int           // local UDP sockets they share
}

// runIdle holds n authenticated, idle connections (receiving sessions
// with keepalives) and reads what they cost the relay.
// Without auth they are bare QUIC connections that never open a session
// (what QUIC itself costs the relay, for comparison).
func runIdle(ctx context.Context, opts *client.Options, ic idleConfig, metricsAddr string, reg *registrar, stateFile string, log func(string, ...any)) (*report, error) {
	n, hold, window, auth := ic.n, ic.hold, ic.window, ic.auth
	if ic.sockets < 1 {
		return nil, fmt.Errorf("-sockets must be at least 1")
	}
	if n < 1 || hold <= 0 {
		return nil, fmt.Errorf("-idle and -hold must be above 0")
	}
	if metricsAddr == "" {
		return nil, fmt.Errorf("-mode idle reads the relay's /metrics: start the relay with -metrics and pass -metrics (or -ready)")
	}
	devs, err := reg.devices(ctx, n, stateFile)
	if err != nil {
		return nil, err
	}
	gauge := "pigeonhole_sessions"
	if !auth {
		gauge = "pigeonhole_connections"
	}
	// The baseline is taken once the relay has finished closing earlier
	// connections (registration's, an earlier run's): two equal readings
	// 100 ms apart, within 5 s.
	var before map[string]float64
	for settle := time.Now().Add(5 * time.Second); ; {
		m, _, err := gcThenScrape(ctx, metricsAddr)
		if err != nil {
			return nil, err
		}
		if before != nil && m[gauge] == before[gauge] || time.Now().After(settle) {
			before = m
			break
		}
		before = m
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	base := before[gauge]
	tp, err := newTransports(ic.sockets, opts.Addr)
	if err != nil {
		return nil, err
	}
	defer tp.close()
	log("connecting %d idle devices", n)
	start := time.Now()
	conns, err := connect(ctx, tp, opts, devs, window, auth, reg)
	if err != nil {
		return nil, err
	}
	defer closeAll(conns)
	took := time.Since(start)
	// Wait (up to a minute) until the relay counts them all (or at least
	// 99%, which it then measures), then let it settle.
	kept := n
	counted := time.Now().Add(time.Minute)
	for {
		m, err := scrape(ctx, metricsAddr)
		if err != nil {
			return nil, err
		}
		have := m[gauge] - base
		if have >= float64(n) {
			break
		}
		if time.Now().After(counted) {
			if have < 0.99*float64(n) {
				return nil, fmt.Errorf("the relay counts %.0f of the %d connections after a minute", have, n)
			}
			// A few closed during the storm: measure what the relay holds.
			log("the relay counts %.0f of the %d connections; measuring those", have, n)
			kept = int(have)
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	log("holding %d connections for %v", n, hold)
	settle := min(hold/4, 5*time.Second)
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(settle):
	}
	mid, err := scrape(ctx, metricsAddr)
	if err != nil {
		return nil, err
	}
	holdStart := time.Now()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(hold - settle):
	}
	after, gc, err := gcThenScrape(ctx, metricsAddr)
	if err != nil {
		return nil, err
	}
	held := time.Since(holdStart)
	r := &idleReport{
		Connections: kept, ConnectSeconds: took.Seconds(), HoldSeconds: held.Seconds(),
		RSSBefore: int64(before["process_resident_memory_bytes"]), RSSAfter: int64(after["process_resident_memory_bytes"]),
		HeapBefore: int64(before["go_memstats_heap_inuse_bytes"]), HeapAfter: int64(after["go_memstats_heap_inuse_bytes"]),
		Goroutines: int64(after["go_goroutines"]), GoroutinesBase: int64(before["go_goroutines"]),
		Sockets: ic.sockets, HeapAfterGC: gc,
		StackBefore: int64(before["go_memstats_stack_inuse_bytes"]), StackAfter: int64(after["go_memstats_stack_inuse_bytes"]),
		IdleCPU: (after["process_cpu_seconds_total"] - mid["process_cpu_seconds_total"]) / held.Seconds(),
	}
	r.RSSPerConn = float64(r.RSSAfter-r.RSSBefore) / float64(kept)
	r.HeapPerConn = float64(r.HeapAfter-r.HeapBefore) / float64(kept)
	r.StackPerConn = float64(r.StackAfter-r.StackBefore) / float64(kept)
	r.GoroutinesPer = float64(r.Goroutines-r.GoroutinesBase) / float64(kept)
	return &report{Mode: "idle", Config: map[string]any{"connections": n, "hold": hold.String(), "window": window, "authenticated": auth, "sockets": ic.sockets}, Idle: r, Errors: map[string]int64{}}, nil
}
