package relay

import (
	"sync/atomic"
	"testing"
	"time"
)

// waitLive waits until w has n workers.
func waitLive(t *testing.T, w *workers, n int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for w.live.Load() != n {
		if time.Now().After(deadline) {
			t.Fatalf("workers: %d live, want %d", w.live.Load(), n)
		}
		<-tick.C
	}
}

func TestWorkersReuseIdle(t *testing.T) {
	w := &workers{tasks: make(chan func()), idle: time.Minute}
	done := make(chan struct{})
	w.run(func() { close(done) })
	<-done
	// The finished worker waits for the next task: a plain send reaches it.
	again := make(chan struct{})
	select {
	case w.tasks <- func() { close(again) }:
	case <-time.After(5 * time.Second):
		t.Fatal("no idle worker took the second task")
	}
	<-again
	if n := w.live.Load(); n != 1 {
		t.Fatalf("%d workers for two tasks in turn, want 1", n)
	}
}

func TestWorkersNeverWait(t *testing.T) {
	w := &workers{tasks: make(chan func()), idle: time.Minute}
	const n = 50
	var started atomic.Int64
	all, release := make(chan struct{}), make(chan struct{})
	for range n {
		w.run(func() {
			if started.Add(1) == n {
				close(all)
			}
			<-release
		})
	}
	select {
	case <-all:
	case <-time.After(5 * time.Second):
		t.Fatalf("%d of %d blocked tasks running: run waited for a worker", started.Load(), n)
	}
	close(release)
}

func TestWorkersExitWhenIdle(t *testing.T) {
	w := &workers{tasks: make(chan func()), idle: time.Millisecond}
	done := make(chan struct{})
	w.run(func() { close(done) })
	<-done
	waitLive(t, w, 0)
}
