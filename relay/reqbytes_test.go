package relay_test

// Tests of the request byte budget (protocol.md, "Streams", item 4) and
// helpers for the tests of reqlimits_test.go.

import (
	"crypto/tls"
	"encoding/binary"
	"runtime"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/quic-go/quic-go"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/pigeonhole/pigeonhole/spec"
)

// rawConnWith dials the relay with the client QUIC settings qconf.
func (r *testRelay) rawConnWith(t *testing.T, qconf *quic.Config) (*quic.Conn, []byte) {
	t.Helper()
	qc, err := quic.DialAddr(ctxT(t), r.opts.Addr, &tls.Config{
		InsecureSkipVerify: true, NextProtos: []string{spec.ALPN}, MinVersion: tls.VersionTLS13,
	}, qconf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { qc.CloseWithError(0, "") })
	cs := qc.ConnectionState().TLS
	exp, err := cs.ExportKeyingMaterial(spec.ExporterLabel, nil, spec.ExporterLength)
	if err != nil {
		t.Fatal(err)
	}
	return qc, exp
}

// unreadAnswers are client QUIC settings under which the relay can send
// one byte on each stream until the client reads.
func unreadAnswers() *quic.Config {
	return &quic.Config{InitialStreamReceiveWindow: 1}
}

// quicStreamBuffer is what quic-go takes from one write on a stream that
// flow control blocks before the write itself blocks
// (protocol.MaxPacketBufferSize): small answers pass into it and return.
const quicStreamBuffer = 1452

// fillers returns unsupported requests (answered at once, needing no
// session): as many as quicStreamBuffer takes the answers of, and extra
// more. With extra 0, on a stream the client does not read, every
// filler's answer is handed to QUIC and the buffer is full: the next
// answer's write blocks, and every later answer stays unwritten. With
// extra > 0 the writer blocks on the fillers' own answers, holding a
// number of them (and their in-flight slots) that depends on how the
// answers were batched.
func fillers(t *testing.T, r *testRelay, extra int) []byte {
	t.Helper()
	qc, _ := r.rawConn(t)
	one := frame(t, &spec.Request{Id: 1})
	st := openRequestStream(t, qc)
	if _, err := st.Write(one); err != nil {
		t.Fatal(err)
	}
	raw, err := spec.ReadFrameBytes(st, 0)
	if err != nil {
		t.Fatal(err)
	}
	qc.CloseWithError(0, "")
	var b []byte
	for range quicStreamBuffer/(4+len(raw)) + extra {
		b = append(b, one...)
	}
	return b
}

// paddedRequest is the frame of req with an unknown field of pad bytes
// (the relay keeps unknown fields, so the decoded request holds them
// too): a payload of exactly size bytes.
func paddedRequest(t *testing.T, req *spec.Request, size int) []byte {
	t.Helper()
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	const field = 1000
	pad := size - len(b) - protowire.SizeTag(field)
	pad -= protowire.SizeVarint(uint64(pad)) // the pad's length prefix
	b = protowire.AppendTag(b, field, protowire.BytesType)
	b = protowire.AppendBytes(b, make([]byte, pad))
	if len(b) != size {
		t.Fatalf("padded request is %d bytes, want %d", len(b), size)
	}
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...)
}

// liveHeap is the heap in use after a collection.
func liveHeap() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}

// TestConnRequestBytesBound fills a connection's in-flight slots with
// answers the client does not read, then opens 24 streams, each with a 4
// MiB request: the relay reads a stream's first frame before it waits for
// a slot, and without the budget it would hold all 96 MiB of them. With
// it, the heap grows by at most ConnRequestBytes (8 MiB) plus QUIC's
// buffers, two requests wait for a slot and the other 22 for budget, at
// their headers.
func TestConnRequestBytesBound(t *testing.T) {
	cfg := testConfig()
	cfg.AuthWait = 2 * time.Minute // no write deadline within the test
	r := startRelay(t, cfg)
	d := r.register(t, 5)
	const (
		streams = 24
		size    = spec.MaxFrameSize - 4<<10 // two, and the fillers, fit
		budget  = 8 << 20
	)
	fr := paddedRequest(t, prekeyStatus(1), size) // written on every stream
	qc, exp := r.rawConnWith(t, unreadAnswers())
	openSessionOn(t, holdSessionStream(t, qc), d, exp)
	st, err := qc.OpenStreamSync(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write(fillers(t, r, spec.MaxRequestsInFlight+4)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the in-flight slots to fill with unwritten answers", func() bool {
		return r.metric(t, "pigeonhole_request_slot_waiting") == 1
	})
	base := liveHeap()

	var wg sync.WaitGroup
	defer wg.Wait()
	defer qc.CloseWithError(0, "") // ends the writers blocked by flow control
	for range streams {
		st, err := qc.OpenStreamSync(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { _, _ = st.Write(fr) })
	}
	// QUIC's receive buffers (the connection window, at most 16 MiB) and
	// the test's own frame come on top of the budget.
	const limit = budget + 16<<20 + size + 8<<20
	deadline := time.Now().Add(60 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for ; ; <-tick.C {
		grown := liveHeap() - base
		if grown > limit {
			t.Fatalf("the heap grew %.1f MiB with the slots full: over the %d MiB budget plus slack (%.0f MiB)",
				float64(grown)/(1<<20), budget>>20, float64(limit)/(1<<20))
		}
		waiting := r.metric(t, "pigeonhole_request_budget_waiting")
		if waiting == streams-2 && r.metric(t, "pigeonhole_request_slot_waiting") == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60 s %v requests wait for budget, want %d; heap grew %.1f MiB", waiting, streams-2, float64(grown)/(1<<20))
		}
	}
	grown := liveHeap() - base
	t.Logf("22 requests wait for budget, 2 for a slot: heap grew %.1f MiB", float64(grown)/(1<<20))
	if grown < 2*size || grown > limit {
		t.Fatalf("the heap grew %.1f MiB, want the two requests read (%.0f MiB) and under %.0f MiB",
			float64(grown)/(1<<20), float64(2*size)/(1<<20), float64(limit)/(1<<20))
	}
}

// TestConnRequestBytesHeldUntilWritten writes many 4 MiB requests on four
// streams of one connection and reads no answer; behind small ones whose
// answers fill QUIC's buffer (all handed to QUIC before the large ones
// are sent, so none of them holds budget or a slot), no answer the relay
// writes leaves, so no request gives its budget back: two requests hold
// the connection's 8 MiB and every stream's reader waits at the next
// frame's header.
func TestConnRequestBytesHeldUntilWritten(t *testing.T) {
	cfg := testConfig()
	cfg.AuthWait = 2 * time.Minute // no write deadline within the test
	r := startRelay(t, cfg)
	d := r.register(t, 5)
	const (
		streams   = 4
		perStream = 6
		size      = spec.MaxFrameSize - 64
		budget    = 8 << 20
	)
	// One frame, written on every stream (the client holds 4 MiB, not 96).
	fr := paddedRequest(t, prekeyStatus(1), size)
	fill := fillers(t, r, 0)
	filled := float64(streams * (len(fill) / len(frame(t, &spec.Request{Id: 1}))))
	qc, exp := r.rawConnWith(t, unreadAnswers())
	// open_session pipelined, never read: the requests wait for it.
	sess := holdSessionStream(t, qc)
	if _, err := sess.Write(frame(t, sessionOpen(t, d, exp))); err != nil {
		t.Fatal(err)
	}
	// Fill each stream's QUIC buffer first: answers are written in
	// completion order, so a large request's answer run beside the
	// fillers could take room in it, leave, and give its budget back,
	// and fillers left unwritten would hold budget (3 bytes each) and
	// slots of their own.
	unknown := requestsOf(t, r, "unknown")
	var sts []*quic.Stream
	for range streams {
		st, err := qc.OpenStreamSync(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Write(fill); err != nil {
			t.Fatal(err)
		}
		sts = append(sts, st)
	}
	waitUntil(t, "the fillers' answers to be handed to QUIC", func() bool {
		return requestsOf(t, r, "unknown")-unknown == filled &&
			r.metric(t, "pigeonhole_requests_in_flight") == 0
	})
	base := liveHeap()

	var wg sync.WaitGroup
	defer wg.Wait()
	defer qc.CloseWithError(0, "") // ends the writers blocked by flow control
	for _, st := range sts {
		wg.Go(func() {
			for range perStream {
				if _, err := st.Write(fr); err != nil {
					return
				}
			}
		})
	}

	const limit = budget + 16<<20 + size + 8<<20
	deadline := time.Now().Add(60 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for ; ; <-tick.C {
		grown := liveHeap() - base
		if grown > limit {
			t.Fatalf("the heap grew %.1f MiB with every answer unread: over the %d MiB budget plus slack (%.0f MiB)",
				float64(grown)/(1<<20), budget>>20, float64(limit)/(1<<20))
		}
		if r.metric(t, "pigeonhole_request_budget_waiting") == streams {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60 s %v readers wait for budget, want %d (one per stream); heap grew %.1f MiB",
				r.metric(t, "pigeonhole_request_budget_waiting"), streams, float64(grown)/(1<<20))
		}
	}
	grown := liveHeap() - base
	held := r.metric(t, "pigeonhole_request_budget_bytes")
	t.Logf("every reader waits for budget: %.1f MiB held, heap grew %.1f MiB", held/(1<<20), float64(grown)/(1<<20))
	if held != 2*size {
		t.Fatalf("budget held %.0f bytes, want two %d-byte requests' worth (of %d)", held, size, budget)
	}
	if grown > limit {
		t.Fatalf("the heap grew %.1f MiB: over the budget plus slack (%.0f MiB)", float64(grown)/(1<<20), float64(limit)/(1<<20))
	}
}

// TestConnRequestBytesLargerThanBudget: a frame larger than the whole
// budget is read alone, and the budget comes back once it is answered,
// so the next one is read too.
func TestConnRequestBytesLargerThanBudget(t *testing.T) {
	cfg := testConfig()
	cfg.ConnRequestBytes = 1 << 20
	r := startRelay(t, cfg)
	d := r.register(t, 5)
	qc, exp := r.rawConn(t)
	openSessionOn(t, holdSessionStream(t, qc), d, exp)
	st, err := qc.OpenStreamSync(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	_ = st.SetReadDeadline(time.Now().Add(60 * time.Second))
	for id := uint64(1); id <= 2; id++ {
		if _, err := st.Write(paddedRequest(t, prekeyStatus(id), 2<<20)); err != nil {
			t.Fatal(err)
		}
		if resp := readResponse(t, st); resp.Id != id || resp.GetPrekeyStatus() == nil {
			t.Fatalf("a 2 MiB request with a 1 MiB budget: %v, want id %d with a prekey status", resp, id)
		}
	}
	// The relay gives the budget back once the answer's write returns,
	// which may be after the answer arrived here.
	waitUntil(t, "the budget to come back after both answers", func() bool {
		return r.metric(t, "pigeonhole_request_budget_bytes") == 0
	})
}

// requestsOf is pigeonhole_requests_total of one request type, all codes.
func requestsOf(t *testing.T, r *testRelay, typ string) float64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != "pigeonhole_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "type" && l.GetValue() == typ {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

// histogram returns the histogram without labels called name.
func histogram(t *testing.T, r *testRelay, name string) *dto.Histogram {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetHistogram()
		}
	}
	t.Fatalf("no histogram %s", name)
	return nil
}
