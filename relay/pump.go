package relay

import (
	"sync"
	"time"

	"github.com/pigeonhole/pigeonhole/spec"
)

// A session's delivery is a pump: kick schedules it on a stream worker
// when something may be written (an append to the device's queue, an ack
// that made room in the window, an event or an online-only frame), and
// it runs until it finds nothing more to write, then ends. An idle
// session so costs no goroutine for delivery: its connection has the
// ack reader (the session stream's handler), the stream acceptor, and
// quic-go's two. One pump runs at a time; a kick while one runs makes it
// look again before it ends, so no wake-up is lost.

// woken is the queue's WatchFunc callback: an append made messages
// readable. It runs under the queue's lock, so it only records the time
// (for pigeonhole_delivery_write_seconds) and kicks.
func (s *session) woken() {
	s.wokeAt.CompareAndSwap(0, time.Now().UnixNano())
	s.kick()
}

// start lets pumps run and runs the first, which reads what is queued.
func (s *session) start() {
	s.pm.Lock()
	s.started = true
	s.pm.Unlock()
	s.kick()
}

// kick makes sure a pump looks at the session after this call: it
// starts one, or tells the running one to look again. It never waits.
func (s *session) kick() {
	s.pm.Lock()
	defer s.pm.Unlock()
	switch {
	case !s.started || s.pumping:
		s.again = true
		return
	case s.stopped:
		return
	}
	s.pumping, s.again = true, false
	s.running.Add(1)
	s.c.s.workers.run(s.pump)
}

// stop ends delivery: no pump starts after it returns, and the one
// running, if any, has ended. Afterwards the pump's state (cursor,
// failed) may be read.
func (s *session) stop() {
	s.pm.Lock()
	s.stopped = true // no Add on running after this
	pumping := s.pumping
	s.pm.Unlock()
	close(s.quit)
	if pumping && !s.clean {
		// A pump blocked writing to a client that went away ends now.
		s.st.CancelWrite(0)
	}
	s.running.Wait()
}

// pump writes until there is nothing more to write, then ends; if a
// write or a queue read failed, it ends the session (the ack reader
// stops, and the handler cleans up).
func (s *session) pump() {
	defer s.running.Done()
	buf := getPumpBuf()
	defer putPumpBuf(buf)
	for {
		ok := s.work(buf)
		s.pm.Lock()
		if !ok {
			s.failed, s.stopped = true, true
		}
		if s.again && !s.stopped {
			s.again = false
			s.pm.Unlock()
			continue
		}
		s.pumping = false
		s.pm.Unlock()
		if !ok {
			s.st.CancelRead(0)
		}
		return
	}
}

// work writes the device's queue in order, at most window envelopes
// unacked, then the events and online-only frames waiting, and "drained"
// once the queue has nothing more; false if the session is to end.
func (s *session) work(buf *[]byte) bool {
	for {
		for pending := true; pending; {
			select {
			case ev := <-s.events:
				if err := spec.WriteFrame(s.st, ev); err != nil {
					return false
				}
			case frame := <-s.online:
				s.onlineBytes.Add(-int64(len(frame)))
				if _, err := s.st.Write(frame); err != nil {
					return false
				}
			default:
				pending = false
			}
		}
		room := s.window - s.inflight.len()
		if room <= 0 {
			return true // an ack kicks again
		}
		// The wake-up this read answers; one during the read sets a new
		// time and kicks again.
		woke := s.wokeAt.Swap(0)
		items, err := s.c.s.queues.Read(s.c.ctx, s.addr, s.cursor, room, maxReadBytes)
		if err != nil && s.c.ctx.Err() != nil {
			return false // the connection closed during the read
		}
		if err != nil {
			// Tell the device rather than go silent; it reconnects
			// later and gets everything unacked again.
			e := s.c.s.internal("read queue", err)
			_ = spec.WriteFrame(s.st, &spec.ServerEvent{Body: &spec.ServerEvent_Error{Error: e}})
			s.st.CancelWrite(0)
			return false
		}
		if len(items) == 0 {
			if !s.drained {
				s.drained = true
				if err := spec.WriteFrame(s.st, &spec.ServerEvent{Body: &spec.ServerEvent_Drained{Drained: &spec.QueueDrained{}}}); err != nil {
					return false
				}
			}
			return true
		}
		b := (*buf)[:0]
		for _, it := range items {
			b = appendEnvelopeFrame(b, it.Seq, it.Time.UnixMilli(), it.Body)
			s.inflight.add(it.Seq)
			s.cursor = it.Seq
		}
		*buf = b
		// Counted before the write, so a client that has read an
		// envelope sees it counted.
		s.c.s.m.delivered.Add(float64(len(items)))
		if _, err := s.st.Write(b); err != nil {
			return false
		}
		if woke != 0 {
			s.c.s.m.deliverWrite.Observe(time.Since(time.Unix(0, woke)).Seconds())
		}
		s.drained = false
	}
}

// pumpBufs holds the buffers pumps frame envelopes in, so an idle
// session holds none.
var pumpBufs = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

func getPumpBuf() *[]byte { return pumpBufs.Get().(*[]byte) }

// putPumpBuf returns b to the pool unless a large read grew it past what
// is worth keeping (maxReadBytes of envelopes).
func putPumpBuf(b *[]byte) {
	if cap(*b) > 256<<10 {
		return
	}
	*b = (*b)[:0]
	pumpBufs.Put(b)
}
