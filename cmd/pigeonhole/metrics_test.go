package main

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/pigeonhole/pigeonhole/queue"
)

// TestStoreMetrics: the queue depth follows appends, and the WAL fsync
// histogram counts the sync of a durable append, in seconds.
func TestStoreMetrics(t *testing.T) {
	db, err := pebble.Open(t.TempDir(), &pebble.Options{Logger: pebbleLogger{slog.New(slog.DiscardHandler)}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	qs, err := queue.Open(db, queue.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if err := registerStoreMetrics(reg, db, qs); err != nil {
		t.Fatal(err)
	}
	var a queue.Address
	a.Device = 1
	if _, err := qs.Append(context.Background(), nil, []queue.Message{{To: a, Body: []byte("x")}, {To: a, Body: []byte("y")}}); err != nil {
		t.Fatal(err)
	}
	// Pebble records an fsync's latency after it wakes the committers, so
	// the sample may land a moment after Append returns.
	mfs := gatherUntil(t, reg, func(name string, m *dto.Metric) bool {
		return name != "pigeonhole_wal_fsync_seconds" || m.GetHistogram().GetSampleCount() > 0
	})
	seen := map[string]bool{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		switch mf.GetName() {
		case "pigeonhole_queue_messages":
			if v := m.GetGauge().GetValue(); v != 2 {
				t.Errorf("queue messages = %v, want 2", v)
			}
		case "pigeonhole_wal_fsync_seconds":
			h := m.GetHistogram()
			if h.GetSampleCount() < 1 || h.GetSampleSum() <= 0 || h.GetSampleSum() > 10 {
				t.Errorf("fsync histogram: %d samples, %v s in all", h.GetSampleCount(), h.GetSampleSum())
			}
		}
		seen[mf.GetName()] = true
	}
	for _, name := range []string{"pigeonhole_queue_messages", "pigeonhole_wal_fsync_seconds"} {
		if !seen[name] {
			t.Errorf("%s not exported", name)
		}
	}
}

// gatherUntil gathers reg until ok holds for every series (patience at most),
// and returns the last gathering.
func gatherUntil(t *testing.T, reg *prometheus.Registry, ok func(string, *dto.Metric) bool) []*dto.MetricFamily {
	t.Helper()
	deadline := time.Now().Add(patience)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		all := true
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				all = all && ok(mf.GetName(), m)
			}
		}
		if all || time.Now().After(deadline) {
			return mfs
		}
		<-tick.C
	}
}
