package relay

import (
	"sync/atomic"
	"time"
)

// workerIdle is how long a stream worker waits for its next stream before
// it exits.
const workerIdle = 10 * time.Second

// workers runs stream handlers on goroutines that outlive one stream.
//
// A request handler's call chain (protobuf, the stores, Pebble's lookup
// and commit paths) is deep: a fresh goroutine starts on a small stack
// and grows it by copying, which took 7% of the relay's CPU at full load
// (runtime.newstack in a profile; 1% with workers). A worker keeps its
// grown stack for the next stream. The number of workers follows the
// number of streams in progress; a worker idle for w.idle exits, and so
// gives its stack back.
type workers struct {
	tasks chan func()
	idle  time.Duration
	live  atomic.Int64 // workers running or idle
}

func newWorkers() *workers {
	return &workers{tasks: make(chan func()), idle: workerIdle}
}

// run calls f on an idle worker, or on a new one if none is idle. It
// never waits for a worker.
func (w *workers) run(f func()) {
	select {
	case w.tasks <- f:
	default:
		w.live.Add(1)
		go w.loop(f)
	}
}

func (w *workers) loop(f func()) {
	defer w.live.Add(-1)
	idle := time.NewTimer(w.idle)
	defer idle.Stop()
	for {
		f()
		f = nil // hold nothing of the finished stream while idle
		idle.Reset(w.idle)
		select {
		case f = <-w.tasks:
		case <-idle.C:
			return
		}
	}
}
