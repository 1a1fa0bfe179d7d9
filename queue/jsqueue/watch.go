package jsqueue

import (
	"github.com/nats-io/nats.go"

	"github.com/pigeonhole/pigeonhole/queue"
)

// watch is one device's wake subscription, shared by its watchers.
type watch struct {
	sub *nats.Subscription
	chs map[chan struct{}]struct{}
}

// Watch returns a channel that receives a value whenever messages for a
// may have become readable (appended through any relay sharing the
// stream), and a function that stops the watch. A value is pending when
// Watch returns, so the reader reads once at the start; readers read after
// each wake-up until Read returns nothing.
func (s *Store) Watch(a queue.Address) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	ch <- struct{}{}
	s.mu.Lock()
	w := s.watches[a]
	if w == nil {
		w = &watch{chs: make(map[chan struct{}]struct{})}
		sub, err := s.nc.Subscribe(wakeSubject(a), func(*nats.Msg) { s.wake(a) })
		if err != nil {
			s.log.Warn("watch: subscribe failed; the reader is woken only by its own reads", "err", err)
		}
		w.sub = sub
		s.watches[a] = w
	}
	w.chs[ch] = struct{}{}
	s.mu.Unlock()
	// Make sure the server has the subscription before the caller reads,
	// so an append after that read wakes it.
	_ = s.nc.Flush()
	return ch, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(w.chs, ch)
		if len(w.chs) == 0 && s.watches[a] == w {
			delete(s.watches, a)
			if w.sub != nil {
				_ = w.sub.Unsubscribe()
			}
		}
	}
}

func (s *Store) wake(a queue.Address) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.watches[a]; w != nil {
		for ch := range w.chs {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}

// WakeAll wakes every watcher, for after a reconnection to NATS, when
// wake-ups published while the connection was down are lost. Pass it to
// nats.ReconnectHandler.
func (s *Store) WakeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.watches {
		for ch := range w.chs {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}
