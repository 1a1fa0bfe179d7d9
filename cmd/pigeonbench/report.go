package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// report is what a run measured. Latencies are in milliseconds.
type report struct {
	Mode          string           `json:"mode"`
	Config        any              `json:"config"`
	Seconds       float64          `json:"seconds"` // sending time
	Accepted      int64            `json:"accepted"`
	AcceptedPerS  float64          `json:"accepted_per_s"`
	Delivered     int64            `json:"delivered"`
	Stale         int64            `json:"stale,omitempty"` // envelopes of earlier runs, acked and not counted
	DeliveredPerS float64          `json:"delivered_per_s"`
	Delivery      *latency         `json:"delivery_latency_ms,omitempty"`
	Accept        *latency         `json:"accept_latency_ms,omitempty"`
	Errors        map[string]int64 `json:"errors"`
	Drain         *drainReport     `json:"drain,omitempty"`
	Idle          *idleReport      `json:"idle,omitempty"`
}

type latency struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
	N   uint64  `json:"n"`
}

type drainReport struct {
	Devices  int     `json:"devices"`
	Messages int64   `json:"messages"`
	P50      float64 `json:"p50_ms"`
	Max      float64 `json:"max_ms"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func latencyOf(h *hist) *latency {
	n := h.total()
	if n == 0 {
		return nil
	}
	return &latency{P50: ms(h.quantile(0.5)), P90: ms(h.quantile(0.9)), P99: ms(h.quantile(0.99)), Max: ms(time.Duration(h.max.Load())), N: n}
}

func (r *run) report(sending time.Duration) *report {
	rep := &report{
		Mode: "load", Config: r.cfg, Seconds: sending.Seconds(),
		Accepted: r.accepted.Load(), Delivered: r.delivered.Load(), Stale: r.stale.Load(),
		Delivery: latencyOf(&r.delivery), Accept: latencyOf(&r.accept), Errors: r.errs,
	}
	rep.AcceptedPerS = float64(rep.Accepted) / sending.Seconds()
	// Deliveries are counted until the last one, which may come after
	// sending stopped.
	if last := time.Duration(r.lastDeliv.Load()); last > 0 {
		rep.DeliveredPerS = float64(rep.Delivered) / max(last, sending).Seconds()
	}
	return rep
}

// print writes the report as a table.
func (rep *report) print(w io.Writer) {
	t := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	if rep.Idle != nil {
		rep.Idle.print(t)
		return
	}
	t("%-26s %12s %12s", "", "total", "per second")
	t("%-26s %12d %12.0f", "accepted (sends)", rep.Accepted, rep.AcceptedPerS)
	t("%-26s %12d %12.0f", "delivered (envelopes)", rep.Delivered, rep.DeliveredPerS)
	if rep.Stale > 0 {
		t("%-26s %12d", "left from earlier runs", rep.Stale)
	}
	t("")
	t("%-26s %9s %9s %9s %9s %10s", "latency (ms)", "p50", "p90", "p99", "max", "n")
	for _, l := range []struct {
		name string
		l    *latency
	}{{"send to delivery", rep.Delivery}, {"send to accepted", rep.Accept}} {
		if l.l != nil {
			t("%-26s %9.3f %9.3f %9.3f %9.3f %10d", l.name, l.l.P50, l.l.P90, l.l.P99, l.l.Max, l.l.N)
		}
	}
	if len(rep.Errors) > 0 {
		var names []string
		for k := range rep.Errors {
			names = append(names, k)
		}
		sort.Strings(names)
		var parts []string
		for _, k := range names {
			parts = append(parts, fmt.Sprintf("%s %d", k, rep.Errors[k]))
		}
		t("\nerrors: %s", strings.Join(parts, ", "))
	} else {
		t("\nerrors: none")
	}
	if d := rep.Drain; d != nil {
		t("offline drain: %d device%s, %d messages, p50 %.1f ms, max %.1f ms after connecting", d.Devices, plural(d.Devices), d.Messages, d.P50, d.Max)
	}
}

func (rep *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}
