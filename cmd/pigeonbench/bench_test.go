package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pigeonhole/pigeonhole/keys"
	"github.com/pigeonhole/pigeonhole/queue"
	"github.com/pigeonhole/pigeonhole/relay"
	"github.com/pigeonhole/pigeonhole/relay/relaytest"
)

// startRelay runs a real relay on 127.0.0.1 with Pebble in a temporary
// directory and its metrics on an HTTP server, and returns the flags
// that point pigeonbench at it.
func startRelay(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	db, err := pebble.Open(dir+"/db", &pebble.Options{Logger: relaytest.QuietPebble{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ks, err := keys.Open(db, keys.Config{})
	if err != nil {
		t.Fatal(err)
	}
	qs, err := queue.Open(db, queue.Config{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	flags, _ := startRelayOn(t, dir, ks, qs)
	return flags
}

// startRelayOn runs a relay on ks and qs (which another relay may share,
// as relays of a cluster share their stores) and returns the flags that
// point pigeonbench at it, and its metrics address.
func startRelayOn(t *testing.T, dir string, ks *keys.Store, qs *queue.Store) ([]string, string) {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv, err := relay.New(relay.Config{RegisterLimit: relay.Limit{Burst: 100000, Every: time.Millisecond}, SendLimit: relay.Limit{Burst: 1 << 30, Every: time.Nanosecond}}, ks, qs, log, reg)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := relay.LoadOrCreateCertificate(dir)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := srv.Listen("127.0.0.1:0", cert)
	if err != nil {
		t.Fatal(err)
	}
	metrics := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		metrics.Close()
	})
	maddr := strings.TrimPrefix(metrics.URL, "http://")
	return []string{"-relay", ln.Addr().String(), "-fingerprint", relay.Fingerprint(cert), "-metrics", maddr}, maddr
}

// benchJSON runs pigeonbench with args and -json and decodes its report.
func benchJSON(t *testing.T, args ...string) *report {
	t.Helper()
	var out, errs bytes.Buffer
	if code := bench(append(args, "-json"), &out, &errs); code != 0 {
		t.Fatalf("pigeonbench %v exited %d:\n%s", args, code, errs.String())
	}
	var rep report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, out.String())
	}
	return &rep
}

// TestLoad drives a real relay: everything accepted is delivered to the
// connected devices, with latencies, and no errors.
func TestLoad(t *testing.T) {
	relayFlags := startRelay(t)
	state := t.TempDir() + "/state"
	rep := benchJSON(t, append(relayFlags, "-state", state, "-devices", "20", "-connected", "10", "-senders", "2", "-window", "4", "-count", "300", "-fanout", "2")...)
	if rep.Accepted < 300 || rep.Delivered != 2*rep.Accepted || len(rep.Errors) != 0 {
		t.Fatalf("accepted %d, delivered %d (want twice that), errors %v", rep.Accepted, rep.Delivered, rep.Errors)
	}
	if rep.Delivery == nil || rep.Delivery.N != uint64(rep.Delivered) || rep.Delivery.P50 <= 0 || rep.Delivery.P99 < rep.Delivery.P50 || rep.Delivery.Max < rep.Delivery.P99 {
		t.Fatalf("delivery latency %+v", rep.Delivery)
	}
	// A second run reuses the registered devices from the state file.
	rep = benchJSON(t, append(relayFlags, "-state", state, "-devices", "20", "-connected", "10", "-senders", "2", "-rate", "200", "-duration", "1s")...)
	if rep.Accepted < 100 || rep.Delivered != rep.Accepted || len(rep.Errors) != 0 {
		t.Fatalf("at 200/s for 1s: accepted %d, delivered %d, errors %v", rep.Accepted, rep.Delivered, rep.Errors)
	}
	// With acks batched from a second goroutine, every message is
	// delivered too. Envelopes an earlier run left unacked at its end
	// (delivery is at least once) are acked and counted apart.
	rep = benchJSON(t, append(relayFlags, "-state", state, "-devices", "20", "-connected", "10", "-senders", "2", "-count", "200", "-batch-acks")...)
	if rep.Accepted < 200 || rep.Delivered != rep.Accepted || len(rep.Errors) != 0 {
		t.Fatalf("batched acks: accepted %d, delivered %d, errors %v", rep.Accepted, rep.Delivered, rep.Errors)
	}
}

// TestBacklog stores messages for an offline device, then connects it
// and times the drain: every stored message comes out.
func TestBacklog(t *testing.T) {
	relayFlags := startRelay(t)
	rep := benchJSON(t, append(relayFlags, "-devices", "1", "-connected", "0", "-offline-share", "1", "-senders", "4", "-count", "500")...)
	if rep.Accepted < 500 || rep.Delivered != 0 || len(rep.Errors) != 0 {
		t.Fatalf("accepted %d, delivered %d, errors %v", rep.Accepted, rep.Delivered, rep.Errors)
	}
	if d := rep.Drain; d == nil || d.Devices != 1 || d.Messages != rep.Accepted || d.Max <= 0 {
		t.Fatalf("drain %+v, want all %d messages from 1 device", rep.Drain, rep.Accepted)
	}
}

// TestIdle holds idle connections and reads their cost from the relay's
// metrics.
func TestIdle(t *testing.T) {
	relayFlags := startRelay(t)
	rep := benchJSON(t, append(relayFlags, "-mode", "idle", "-idle", "50", "-hold", "2s")...)
	r := rep.Idle
	if r == nil || r.Connections != 50 || r.RSSAfter <= 0 || r.HeapAfter <= 0 || r.Goroutines <= 0 || r.HoldSeconds <= 0 {
		t.Fatalf("idle report %+v", r)
	}
	// Bare QUIC connections, for comparison: the relay counts them as
	// connections, not sessions.
	rep = benchJSON(t, append(relayFlags, "-mode", "idle", "-idle", "20", "-hold", "1s", "-idle-auth=false")...)
	if r := rep.Idle; r == nil || r.Connections != 20 {
		t.Fatalf("bare idle report %+v", r)
	}
}

func TestFlagsChecked(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"-relay", "127.0.0.1:1", "-fingerprint", "00", "-connected", "0"},
		{"-relay", "127.0.0.1:1", "-fingerprint", "00", "-size", "4"},
		{"-relay", "127.0.0.1:1", "-fingerprint", "00", "-devices", "10", "-connected", "20"},
		{"-relay", "127.0.0.1:1", "-fingerprint", "00", "-devices", "110", "-connected", "100", "-fanout", "20", "-offline-share", "0.1"},
		{"-relay", "127.0.0.1:1", "-fingerprint", "00", "-devices", "2000", "-connected", "2000", "-fanout", "1001"},
		{"-relay", "127.0.0.1:1", "-fingerprint", "00", "-rate", "-1"},
	} {
		var out, errs bytes.Buffer
		if code := bench(args, &out, &errs); code != 2 {
			t.Errorf("pigeonbench %v exited %d, want 2 (usage)", args, code)
		}
		if !strings.HasPrefix(errs.String(), "pigeonbench: ") {
			t.Errorf("pigeonbench %v said %q", args, errs.String())
		}
	}
}

// TestRecvReady sends through one relay to recipients connected to
// another that shares its stores, as two relays of a cluster do: every
// envelope is delivered by the second relay, none by the first, and the
// offline device drains from the second too.
func TestRecvReady(t *testing.T) {
	dir := t.TempDir()
	db, err := pebble.Open(dir+"/db", &pebble.Options{Logger: relaytest.QuietPebble{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ks, err := keys.Open(db, keys.Config{})
	if err != nil {
		t.Fatal(err)
	}
	qs, err := queue.Open(db, queue.Config{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	a, aMetrics := startRelayOn(t, t.TempDir(), ks, qs)
	b, bMetrics := startRelayOn(t, t.TempDir(), ks, qs)
	ready, err := json.Marshal(map[string]string{"addr": b[1], "fingerprint": b[3], "metrics": bMetrics})
	if err != nil {
		t.Fatal(err)
	}
	readyFile := filepath.Join(t.TempDir(), "b.json")
	if err := os.WriteFile(readyFile, ready, 0o600); err != nil {
		t.Fatal(err)
	}
	rep := benchJSON(t, append(a, "-recv-ready", readyFile, "-devices", "12", "-connected", "10", "-offline-share", "0.1", "-senders", "2", "-count", "300")...)
	if rep.Accepted < 300 || len(rep.Errors) != 0 || rep.Drain == nil || rep.Delivered+rep.Drain.Messages != rep.Accepted {
		t.Fatalf("accepted %d, delivered %d, drain %+v, errors %v", rep.Accepted, rep.Delivered, rep.Drain, rep.Errors)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ma, err := scrape(ctx, aMetrics)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := scrape(ctx, bMetrics)
	if err != nil {
		t.Fatal(err)
	}
	// Redeliveries count too, so the second relay's figure may be higher.
	if got := ma["pigeonhole_envelopes_delivered_total"]; got != 0 {
		t.Errorf("the senders' relay delivered %v envelopes, want 0", got)
	}
	if got := mb["pigeonhole_envelopes_delivered_total"]; got < float64(rep.Accepted) {
		t.Errorf("the recipients' relay delivered %v envelopes, want at least %d", got, rep.Accepted)
	}
}
