package relay

import (
	"errors"
	"io"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"google.golang.org/protobuf/proto"

	"github.com/pigeonhole/pigeonhole/spec"
)

// A request stream (protocol.md, "Request streams") carries any number of
// Request frames. The stream's worker reads them one after another and
// hands each to a worker of its own; answers are written in the order the
// requests complete, and answers that are ready together leave in one
// stream write. A connection has at most spec.MaxRequestsInFlight
// requests read and not yet written back, over all its streams, and at
// most Config.ConnRequestBytes of their payloads (reqbytes.go): at
// either limit the reader reads no further frame than its header, so
// QUIC's flow control holds the client back and the relay holds no more
// than that many requests, or answers, per connection. Once the relay is
// stopping, a request stream ends after the request read last.

// reqStream is one request stream being served.
type reqStream struct {
	c  *conn
	st *quic.Stream
	id quic.StreamID
	wg sync.WaitGroup // requests read and not yet answered

	wmu     sync.Mutex
	pending []byte // framed answers not yet written
	spare   []byte // the previous write's buffer, for reuse
	slots   int    // in-flight slots the answers in pending hold
	held    int64  // request byte budget the answers in pending hold
	writing bool   // a goroutine is writing; it also writes what others add
	broken  bool   // a write failed: answers are dropped
}

// serveRequests runs first, the stream's first request, and every request
// after it until the client finishes the stream (then the relay finishes
// its side once every answer is written) or the stream or connection
// ends. budget is first's unauthenticated reservation, if any, and held
// the request byte budget it holds. Once the relay is stopping, the
// stream ends after the request just read.
func (c *conn) serveRequests(st *quic.Stream, first *spec.Request, budget *unauthReservation, held int64) {
	rs := &reqStream{c: c, st: st, id: st.StreamID()}
	c.beginRequest(rs.id)
	if !c.takeSlot() {
		c.endRequest()
		budget.release()
		c.releaseRequestBytes(held)
		st.CancelRead(0)
		st.CancelWrite(0)
		return
	}
	req := first
	for {
		rs.wg.Add(1)
		r, b, h, read := req, budget, held, time.Now()
		c.s.workers.run(func() { rs.run(r, b, h, read) })
		if c.s.isStopping() {
			rs.wg.Wait()
			if !rs.isBroken() {
				_ = st.Close()
			}
			st.CancelRead(0)
			return
		}

		var e *spec.Error
		var err error
		req, budget, held, e, err = c.readNextRequest(st, rs.id)
		if err != nil {
			// The client finished the stream (io.EOF) or reset it, or the
			// connection ended: the requests already read still run.
			rs.wg.Wait()
			if errors.Is(err, io.EOF) && !rs.isBroken() {
				_ = st.Close()
			} else {
				st.CancelWrite(0)
			}
			return
		}
		if e != nil {
			// The framing is lost or the frame is no Request: answer
			// with id 0 and end the stream after the answers in flight.
			c.s.m.requests.WithLabelValues("invalid", spec.Code(e.Code).String()).Inc()
			rs.wg.Wait()
			_ = st.SetWriteDeadline(time.Now().Add(c.s.cfg.AuthWait))
			_ = spec.WriteFrame(st, &spec.Response{Error: e})
			_ = st.Close()
			st.CancelRead(0)
			return
		}
	}
}

// takeSlot waits for one of the connection's in-flight slots; false means
// the connection closed first.
func (c *conn) takeSlot() bool {
	select {
	case c.slots <- struct{}{}:
		c.s.rm.inFlight.Inc()
		return true
	default:
	}
	c.s.rm.slotWaiting.Inc()
	defer c.s.rm.slotWaiting.Dec()
	select {
	case c.slots <- struct{}{}:
		c.s.rm.inFlight.Inc()
		return true
	case <-c.ctx.Done():
		return false
	}
}

// freeSlots gives back n in-flight slots.
func (c *conn) freeSlots(n int) {
	for range n {
		<-c.slots
	}
	c.s.rm.inFlight.Sub(float64(n))
}

// errConnClosed ends a request stream's reader when its connection closes.
var errConnClosed = errors.New("connection closed")

// readNextRequest reads the stream's next Request frame: its header (with
// no deadline: a request stream may idle), then, once the connection has
// request byte budget (reqbytes.go) and then an in-flight slot for it,
// its payload (within AuthWait), so a connection at either limit holds
// no frame it has not started to run. A returned request holds a slot
// and held bytes of the budget, and counts as begun (beginRequest). err
// is set when the stream ended (io.EOF: the client finished it); e when
// the frame is refused.
func (c *conn) readNextRequest(st *quic.Stream, id quic.StreamID) (*spec.Request, *unauthReservation, int64, *spec.Error, error) {
	_ = st.SetReadDeadline(time.Time{})
	n, err := spec.ReadFrameHeader(st, spec.MaxFrameSize)
	if errors.Is(err, spec.ErrFrameTooLarge) {
		return nil, nil, 0, readErrorToSpec(err), nil
	}
	if err != nil {
		return nil, nil, 0, nil, err
	}
	// Bytes before the slot: the lock order of reqbytes.go.
	held, err := c.holdRequestBytes(n)
	if err != nil {
		return nil, nil, 0, nil, err
	}
	if !c.takeSlot() {
		c.releaseRequestBytes(held)
		return nil, nil, 0, nil, errConnClosed
	}
	c.beginRequest(id)
	refuse := func(e *spec.Error) (*spec.Request, *unauthReservation, int64, *spec.Error, error) {
		c.releaseRequestBytes(held)
		c.freeSlots(1)
		c.endRequest()
		return nil, nil, 0, e, nil
	}
	_ = st.SetReadDeadline(time.Now().Add(c.s.cfg.AuthWait))
	raw, budget, _, e := c.readPayload(st, id, n, held)
	if e != nil {
		return refuse(e)
	}
	req := new(spec.Request)
	if proto.Unmarshal(raw, req) != nil {
		budget.release()
		return refuse(readErrorToSpec(errBadProto))
	}
	if req.GetOpenSession() != nil || req.GetOpenProvisioning() != nil {
		budget.release()
		return refuse(spec.Err(spec.CodeProtocol, "open_session and open_provisioning are only a stream's first frame"))
	}
	return req, budget, held, nil, nil
}

// run answers one request, read off the stream at read, and frees its
// place; held is the request byte budget it holds, given back once its
// answer is written.
func (rs *reqStream) run(req *spec.Request, budget *unauthReservation, held int64, read time.Time) {
	c := rs.c
	c.s.m.requestWait.Observe(time.Since(read).Seconds())
	defer rs.wg.Done()
	defer c.endRequest()
	var resp *spec.Response
	if c.s.isStopping() {
		c.s.m.requests.WithLabelValues("invalid", spec.CodeShuttingDown.String()).Inc()
		resp = &spec.Response{Error: errShuttingDown()}
	} else {
		resp = c.dispatch(rs.id, req)
		if resp.Error == nil && (req.GetRegister() != nil || req.GetLinkDevice() != nil) {
			c.establish()
		}
	}
	budget.release()
	resp.Id = req.Id
	rs.answer(resp, held)
}

// answer queues resp's frame and, unless another goroutine is writing
// already, writes everything queued, in as few writes as it can. Each
// answer's in-flight slot, and the request byte budget its request held
// (held), are freed once its bytes are handed to QUIC.
func (rs *reqStream) answer(resp *spec.Response, held int64) {
	rs.wmu.Lock()
	if !rs.broken {
		var err error
		if rs.pending, err = spec.AppendFrame(rs.pending, resp); err != nil {
			// Too large to send: say so rather than go silent.
			rs.pending, _ = spec.AppendFrame(rs.pending, &spec.Response{Id: resp.Id,
				Error: rs.c.s.internal("encode a response", err)})
		}
	}
	rs.slots++
	rs.held += held
	rs.c.s.rm.unwritten.Inc()
	if rs.writing {
		rs.wmu.Unlock()
		return
	}
	rs.writing = true
	for rs.slots > 0 {
		buf, n, held := rs.pending, rs.slots, rs.held
		rs.pending, rs.spare, rs.slots, rs.held = rs.spare[:0], nil, 0, 0
		broken := rs.broken
		rs.wmu.Unlock()
		if !broken && len(buf) > 0 {
			rs.c.s.rm.answersPerWrite.Observe(float64(n))
			_ = rs.st.SetWriteDeadline(time.Now().Add(rs.c.s.cfg.AuthWait))
			if _, err := rs.st.Write(buf); err != nil {
				broken = true
				// A client that does not read its answers loses the
				// stream, not the relay's memory.
				rs.st.CancelRead(0)
				rs.st.CancelWrite(0)
			}
		}
		rs.c.s.rm.unwritten.Sub(float64(n))
		rs.c.releaseRequestBytes(held)
		rs.c.freeSlots(n)
		rs.wmu.Lock()
		rs.broken = rs.broken || broken
		if cap(buf) <= maxSpareAnswerBytes {
			rs.spare = buf[:0]
		}
	}
	rs.writing = false
	rs.wmu.Unlock()
}

// maxSpareAnswerBytes bounds the write buffer a request stream keeps.
const maxSpareAnswerBytes = 64 << 10

func (rs *reqStream) isBroken() bool {
	rs.wmu.Lock()
	defer rs.wmu.Unlock()
	return rs.broken
}
