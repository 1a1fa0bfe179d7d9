package main

import (
	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/pigeonhole/pigeonhole/queue"
)

// registerStoreMetrics adds what the stores know to reg: messages queued
// in all device queues, and Pebble's WAL fsync latency (the floor under
// every durable send).
func registerStoreMetrics(reg prometheus.Registerer, db *pebble.DB, qs *queue.Store) error {
	queued := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pigeonhole_queue_messages", Help: "Messages waiting in all device queues (delivered but unacked ones included).",
	}, func() float64 { return float64(qs.Len()) })
	if err := reg.Register(queued); err != nil {
		return err
	}
	if h := db.Metrics().LogWriter.FsyncLatency; h != nil {
		return reg.Register(&fsyncCollector{h: h})
	}
	return nil
}

// fsyncCollector re-exports Pebble's WAL fsync histogram, which has no
// name and counts nanoseconds, as pigeonhole_wal_fsync_seconds.
type fsyncCollector struct{ h prometheus.Histogram }

var fsyncDesc = prometheus.NewDesc("pigeonhole_wal_fsync_seconds", "Latency of Pebble's WAL fsyncs (each makes a group of durable writes stick).", nil, nil)

func (c *fsyncCollector) Describe(ch chan<- *prometheus.Desc) { ch <- fsyncDesc }

func (c *fsyncCollector) Collect(ch chan<- prometheus.Metric) {
	var m dto.Metric
	if err := c.h.Write(&m); err != nil || m.Histogram == nil {
		return
	}
	h := m.Histogram
	buckets := make(map[float64]uint64, len(h.Bucket))
	for _, b := range h.Bucket {
		buckets[b.GetUpperBound()/1e9] = b.GetCumulativeCount()
	}
	ch <- prometheus.MustNewConstHistogram(fsyncDesc, h.GetSampleCount(), h.GetSampleSum()/1e9, buckets)
}
