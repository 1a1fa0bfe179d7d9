package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/quic-go/quic-go"

	"github.com/pigeonhole/pigeonhole/spec"
)

// requestMux pipelines a connection's requests on one long-lived request
// stream (protocol.md, "Request streams"): each request gets an id, the
// frames of requests made together leave in one write, and a reader
// goroutine hands each answer to the caller waiting on its id. When the
// stream dies, every request waiting on it fails and the next request
// opens a new stream.
type requestMux struct {
	slots chan struct{} // at most spec.MaxRequestsInFlight waiting callers

	mu      sync.Mutex
	cur     *muxStream    // the live request stream, nil if none
	opening chan struct{} // non-nil while a stream is being opened
	nextID  uint64
	waiting map[uint64]*waiter
}

// muxStream is one request stream; its fields are under requestMux.mu.
type muxStream struct {
	st      *quic.Stream
	pending []byte // frames not yet written
	writing bool   // a caller is writing pending
	dead    error  // why the stream was retired, once it was
	retired bool   // takes no new requests (dead, or a write failed)
}

// waiter is a request sent and not yet answered. It holds one of
// requestMux.slots until its answer or its stream's end, also when its
// caller has given up (abandoned), because the relay still runs it.
type waiter struct {
	ms        *muxStream
	ch        chan muxResult
	abandoned bool
}

type muxResult struct {
	resp *spec.Response
	err  error
}

// errStreamEnded is the cause when the relay finishes the request stream,
// which it does only after a frame it could not take.
var errStreamEnded = errors.New("the relay ended the request stream")

// roundTrip sends one request and waits for its answer. A request whose
// context ends is abandoned: the relay may still carry it out (a send with
// a client message id can be retried safely).
func (c *Conn) roundTrip(ctx context.Context, req *spec.Request) (*spec.Response, error) {
	m := &c.mux
	select {
	case m.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var ms *muxStream
	for {
		var err error
		if ms, err = c.requestStream(ctx); err != nil {
			<-m.slots
			return nil, err
		}
		m.mu.Lock()
		if !ms.retired {
			break
		}
		// The stream was retired between opening and now: the next
		// call opens a new one.
		m.mu.Unlock()
	}
	m.nextID++
	id := m.nextID
	req.Id = id
	var err error
	if ms.pending, err = spec.AppendFrame(ms.pending, req); err != nil {
		m.mu.Unlock()
		<-m.slots
		return nil, err
	}
	w := &waiter{ms: ms, ch: make(chan muxResult, 1)}
	m.waiting[id] = w
	if !ms.writing {
		// The write happens off the caller, so a caller whose context
		// ends never stays stuck in a write the relay does not take.
		ms.writing = true
		go m.flush(ms)
	}
	m.mu.Unlock()

	select {
	case r := <-w.ch:
		<-m.slots
		if r.err != nil {
			return nil, r.err
		}
		if r.resp.Error != nil {
			return nil, fromSpec(r.resp.Error)
		}
		return r.resp, nil
	case <-ctx.Done():
		m.mu.Lock()
		if m.waiting[id] == w {
			// Still in flight: its slot is freed when the answer comes.
			w.abandoned = true
			m.mu.Unlock()
		} else {
			m.mu.Unlock()
			<-w.ch
			<-m.slots
		}
		return nil, ctx.Err()
	}
}

// completeLocked hands r to the waiter for id, or frees the slot of a
// waiter whose caller gave up. m.mu is held.
func (m *requestMux) completeLocked(id uint64, w *waiter, r muxResult) {
	delete(m.waiting, id)
	if w.abandoned {
		<-m.slots
		return
	}
	w.ch <- r
}

// flush writes ms's pending frames until none are left, releasing m.mu
// around each write, so requests made meanwhile join the next write.
// ms.writing is set on entry and cleared on return.
func (m *requestMux) flush(ms *muxStream) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var spare []byte
	for len(ms.pending) > 0 && !ms.retired {
		buf := ms.pending
		ms.pending = spare[:0]
		m.mu.Unlock()
		_, err := ms.st.Write(buf)
		m.mu.Lock()
		spare = buf
		if err != nil {
			// The relay stopped reading (it ended the stream after a
			// frame it could not take) or the connection ended: the
			// stream takes no more requests, but the answers to those
			// it took are still read (readAnswers ends the waiters).
			ms.retired = true
			ms.pending = nil
			if m.cur == ms {
				m.cur = nil
			}
			ms.st.CancelWrite(0)
		}
	}
	ms.writing = false
}

// requestStream returns the live request stream, opening one if there is
// none.
func (c *Conn) requestStream(ctx context.Context) (*muxStream, error) {
	m := &c.mux
	for {
		m.mu.Lock()
		if ms := m.cur; ms != nil {
			m.mu.Unlock()
			return ms, nil
		}
		if wait := m.opening; wait != nil {
			m.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		done := make(chan struct{})
		m.opening = done
		m.mu.Unlock()

		st, err := c.qc.OpenStreamSync(ctx)
		m.mu.Lock()
		m.opening = nil
		close(done)
		if err != nil {
			m.mu.Unlock()
			return nil, fmt.Errorf("open stream: %w", err)
		}
		ms := &muxStream{st: st}
		m.cur = ms
		if m.waiting == nil {
			m.waiting = make(map[uint64]*waiter)
		}
		m.mu.Unlock()
		go c.readAnswers(ms)
		return ms, nil
	}
}

// readAnswers hands each answer on the stream to the request waiting for
// it, until the stream ends; then everything still waiting on it fails.
func (c *Conn) readAnswers(ms *muxStream) {
	m := &c.mux
	st := ms.st
	for {
		resp := new(spec.Response)
		err := spec.ReadFrame(st, spec.MaxFrameSize, resp)
		if err == nil && resp.Id == 0 && resp.Error != nil {
			// The relay refused a frame it could not match to a request
			// and ends the stream.
			err = fromSpec(resp.Error)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errStreamEnded
			}
			if cause := context.Cause(c.qc.Context()); cause != nil {
				err = cause // the connection closed: say why
			}
			st.CancelWrite(0)
			st.CancelRead(0)
			m.mu.Lock()
			m.failLocked(ms, fmt.Errorf("read response: %w", err))
			m.mu.Unlock()
			return
		}
		m.mu.Lock()
		if w, ok := m.waiting[resp.Id]; ok && w.ms == ms {
			m.completeLocked(resp.Id, w, muxResult{resp: resp})
		}
		m.mu.Unlock()
	}
}

// failLocked retires st: requests waiting on it get err, and the next
// request opens a new stream. m.mu is held.
func (m *requestMux) failLocked(ms *muxStream, err error) {
	if ms.dead != nil {
		return
	}
	ms.dead = err
	ms.retired = true
	ms.pending = nil
	if m.cur == ms {
		m.cur = nil
	}
	for id, w := range m.waiting {
		if w.ms == ms {
			m.completeLocked(id, w, muxResult{err: err})
		}
	}
}
