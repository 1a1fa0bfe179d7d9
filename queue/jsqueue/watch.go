package jsqueue

import (
	"encoding/binary"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/pigeonhole/pigeonhole/queue"
)

// subscribeWakes makes the Store's one subscription to every device's
// wake-ups (phw.>), at Open. One wildcard subscription, made long before
// any reader waits, has no window in which a new per-device interest has
// not yet reached the NATS server an append goes through: such a wake-up
// would be dropped, and the reader would wait for the next one. Each relay
// receives every wake-up (a few dozen bytes each) and hands it to its own
// readers.
func (s *Store) subscribeWakes() error {
	sub, err := s.nc.Subscribe("phw.>", func(m *nats.Msg) {
		if a, ok := parseWake(m.Subject); ok {
			var seq uint64
			if len(m.Data) == 8 {
				seq = binary.BigEndian.Uint64(m.Data)
			}
			s.wake(a, seq)
		}
	})
	if err != nil {
		return err
	}
	// Unlimited pending: a slow relay must not drop wake-ups.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		_ = sub.Unsubscribe()
		return err
	}
	if err := s.nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return err
	}
	s.wakes = sub
	return nil
}

// parseWake reads the address out of a phw.<account hex>.<device> subject.
func parseWake(subj string) (queue.Address, bool) {
	rest, ok := strings.CutPrefix(subj, "phw.")
	if !ok {
		return queue.Address{}, false
	}
	return queue.ParseToken(rest)
}

// Watch returns a channel that receives a value whenever messages for a
// may have become readable (appended through any relay sharing the
// stream), and a function that stops the watch. A value is pending when
// Watch returns, so the reader reads once at the start; readers read after
// each wake-up until Read returns nothing.
func (s *Store) Watch(a queue.Address) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	ch <- struct{}{}
	return ch, s.WatchFunc(a, func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	})
}

// WatchFunc is Watch without a channel (and so without a goroutine to
// wait on one): f is called whenever messages for a may have become
// readable, until the returned function stops the watch. f runs under
// the Store's lock: it must return at once and must not call the Store.
// It is not called for what is readable already; read once after
// WatchFunc returns.
func (s *Store) WatchFunc(a queue.Address, f func()) (cancel func()) {
	w := &watcher{f: f}
	s.mu.Lock()
	ws := s.watches[a]
	if ws == nil {
		ws = make(map[*watcher]struct{})
		s.watches[a] = ws
	}
	ws[w] = struct{}{}
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(ws, w)
		if len(ws) == 0 && len(s.watches[a]) == 0 {
			delete(s.watches, a)
			delete(s.known, a)
			s.out.forget(a)
		}
	}
}

// watcher is one WatchFunc's callback.
type watcher struct{ f func() }

// wake wakes a's readers; seq, if not 0, is the stream seq of the new
// message, which Read makes sure to return.
func (s *Store) wake(a queue.Address, seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.watches[a]) == 0 {
		return
	}
	s.known[a] = max(s.known[a], seq)
	for w := range s.watches[a] {
		w.f()
	}
}

// announced reports whether a has a reader on this Store, and the
// highest seq a wake-up named for it.
func (s *Store) announced(a queue.Address) (watched bool, seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.watches[a]) > 0, s.known[a]
}

// WakeAll wakes every watcher, for after a reconnection to NATS, when
// wake-ups published while the connection was down are lost. Pass it to
// nats.ReconnectHandler.
func (s *Store) WakeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ws := range s.watches {
		for w := range ws {
			w.f()
		}
	}
}

// Close stops the Store's wake-up subscription. The connection stays the
// caller's.
func (s *Store) Close() error {
	if s.wakes == nil {
		return nil
	}
	return s.wakes.Unsubscribe()
}
