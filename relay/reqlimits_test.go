package relay_test

// Tests of what protocol.md's "Streams" says of a request stream and no
// other test showed: the write deadline of a client that does not read
// its answers, the in-flight limit shared by a connection's streams, and
// answers ready together leaving in one write.

import (
	"context"
	"errors"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/quic-go/quic-go"

	"github.com/pigeonhole/pigeonhole/spec"
)

// TestRequestStreamWriteDeadline: a client that never reads its answers
// loses the stream once an answer has waited AuthWait to be written (the
// relay resets it and stops reading it); the connection carries on.
func TestRequestStreamWriteDeadline(t *testing.T) {
	cfg := testConfig()
	cfg.AuthWait = time.Second
	r := startRelay(t, cfg)
	d := r.register(t, 5)
	qc, exp := r.rawConnWith(t, unreadAnswers())
	sess := holdSessionStream(t, qc)
	if _, err := sess.Write(frame(t, sessionOpen(t, d, exp))); err != nil {
		t.Fatal(err)
	}
	st, err := qc.OpenStreamSync(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write(fillers(t, r, 4)); err != nil {
		t.Fatal(err)
	}
	// The answers overflow what QUIC takes while the client lets one
	// byte through, so a write of the relay's blocks. Its STOP_SENDING
	// then ends the stream's write side here (the stream's context).
	start := time.Now()
	select {
	case <-st.Context().Done():
	case <-time.After(60 * time.Second):
		t.Fatal("the relay kept a stream whose answers were not read for 60 s")
	}
	elapsed := time.Since(start)
	var se *quic.StreamError
	if _, err := st.Write(frame(t, prekeyStatus(3))); !errors.As(err, &se) || !se.Remote || se.ErrorCode != 0 {
		t.Fatalf("write after %v: %v, want the relay's STOP_SENDING, code 0", elapsed, err)
	}
	_ = st.SetReadDeadline(time.Now().Add(60 * time.Second))
	if _, err := st.Read(make([]byte, 64)); !errors.As(err, &se) || !se.Remote || se.ErrorCode != 0 {
		t.Fatalf("read after %v: %v, want the relay's RESET_STREAM, code 0", elapsed, err)
	}
	t.Logf("stream lost %v after the answers were ready (AuthWait %v)", elapsed, cfg.AuthWait)
	if qc.Context().Err() != nil {
		t.Fatalf("the connection closed with the stream: %v", context.Cause(qc.Context()))
	}
}

// TestRequestsInFlightSharedByStreams spreads spec.MaxRequestsInFlight
// requests that wait for the session over four streams: a request that
// needs no session, on a fifth stream, then waits for an in-flight slot
// (the limit is the connection's, not each stream's) until the session
// is verified. With one request fewer waiting, it is answered at once.
func TestRequestsInFlightSharedByStreams(t *testing.T) {
	r := startRelay(t, testConfig())
	d := r.register(t, 5)
	for _, waiting := range []int{spec.MaxRequestsInFlight - 1, spec.MaxRequestsInFlight} {
		qc, exp := r.rawConn(t)
		sess := holdSessionStream(t, qc)
		var sts []*quic.Stream
		var counts []int
		id := uint64(0)
		for s := range 4 {
			var reqs []*spec.Request
			for range (waiting + 3 - s) / 4 {
				id++
				reqs = append(reqs, prekeyStatus(id))
			}
			sts = append(sts, openRequestStream(t, qc, reqs...))
			counts = append(counts, len(reqs))
		}
		if int(id) != waiting {
			t.Fatalf("spread %d requests, want %d", id, waiting)
		}
		waitUntil(t, "the waiting requests to be read", func() bool {
			return r.metric(t, "pigeonhole_requests_in_flight") == float64(waiting)
		})
		extra := openRequestStream(t, qc, &spec.Request{Id: 1000})
		answered := make(chan *spec.Response, 1)
		go func() {
			var resp spec.Response
			if spec.ReadFrame(extra, 0, &resp) == nil {
				answered <- &resp
			}
			close(answered)
		}()
		if waiting < spec.MaxRequestsInFlight {
			resp := <-answered
			if resp == nil || resp.Id != 1000 || spec.Code(resp.GetError().GetCode()) != spec.CodeUnsupported {
				t.Fatalf("%d waiting: %v, want id 1000 UNSUPPORTED at once", waiting, resp)
			}
		} else {
			waitUntil(t, "the extra request to wait for a slot", func() bool {
				select {
				case resp := <-answered:
					t.Fatalf("%d waiting over four streams: %v answered while the session was held: the limit is per stream", waiting, resp)
				default:
				}
				return r.metric(t, "pigeonhole_request_slot_waiting") == 1
			})
		}
		openSessionOn(t, sess, d, exp)
		for i, st := range sts {
			for range counts[i] {
				if resp := readResponse(t, st); resp.GetPrekeyStatus() == nil {
					t.Fatalf("%d waiting: answer %v, want a prekey status", waiting, resp)
				}
			}
		}
		if waiting == spec.MaxRequestsInFlight {
			if resp := <-answered; resp == nil || resp.Id != 1000 {
				t.Fatalf("the extra request after the session: %v, want id 1000", resp)
			}
		}
		qc.CloseWithError(0, "")
	}
}

// TestAnswersReadyTogetherOneWrite holds a stream's answers back (the
// client lets one byte through until it reads) while the relay answers
// many requests, then reads: the answers that piled up leave in one
// write, as pigeonhole_request_answers_per_write shows.
//
// It waits on the writer's state, never on timing: fillers that fit
// QUIC's buffer exactly are all handed to QUIC first (answers are written
// in completion order, so answers run beside the fillers would take some
// of its room); then the next answer's write blocks, and the 40 answers
// after it wait behind it (pigeonhole_request_answers_unwritten) until
// the client reads. With the fillers written, the answers waiting hold
// 41 of the connection's 64 in-flight slots, so every request is read.
func TestAnswersReadyTogetherOneWrite(t *testing.T) {
	cfg := testConfig()
	cfg.AuthWait = 2 * time.Minute // no write deadline within the test
	r := startRelay(t, cfg)
	d := r.register(t, 5)
	fill := fillers(t, r, 0)
	qc, exp := r.rawConnWith(t, unreadAnswers())
	openSessionOn(t, holdSessionStream(t, qc), d, exp)
	st, err := qc.OpenStreamSync(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	filled := float64(len(fill) / len(frame(t, &spec.Request{Id: 1})))
	unknown := requestsOf(t, r, "unknown")
	if _, err := st.Write(fill); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the fillers' answers to be handed to QUIC", func() bool {
		return requestsOf(t, r, "unknown")-unknown == filled &&
			r.metric(t, "pigeonhole_requests_in_flight") == 0
	})
	h0 := histogram(t, r, "pigeonhole_request_answers_per_write")

	// QUIC's buffer is full: the next answer's write blocks, alone.
	writeRequests(t, st, prekeyStatus(2))
	waitUntil(t, "the first answer's write to block", func() bool {
		return r.metric(t, "pigeonhole_request_answers_unwritten") == 1
	})
	const n = 40
	reqs := make([]*spec.Request, n)
	for i := range reqs {
		reqs[i] = prekeyStatus(uint64(100 + i))
	}
	writeRequests(t, st, reqs...)
	waitUntil(t, "the answers to wait behind the blocked write", func() bool {
		return r.metric(t, "pigeonhole_request_answers_unwritten") == n+1
	})

	for range int(filled) {
		if resp := readResponse(t, st); resp.Id != 1 {
			t.Fatalf("answer %v before the fillers' answers were read, want id 1", resp)
		}
	}
	seen := map[uint64]bool{}
	for range n + 1 {
		resp := readResponse(t, st)
		if resp.GetPrekeyStatus() == nil || seen[resp.Id] || (resp.Id != 2 && (resp.Id < 100 || resp.Id >= 100+n)) {
			t.Fatalf("answer %v: want a prekey status, once per id", resp)
		}
		seen[resp.Id] = true
	}
	h := histogram(t, r, "pigeonhole_request_answers_per_write")
	writes := h.GetSampleCount() - h0.GetSampleCount()
	answers := h.GetSampleSum() - h0.GetSampleSum()
	big := writes - (bucket(h, 32) - bucket(h0, 32))
	t.Logf("%v answers after the fillers in %d writes, %d of them over 32 answers", answers, writes, big)
	if writes != 2 || answers != n+1 || big != 1 {
		t.Fatalf("%d answers ready together behind a blocked write left in %d writes (%v answers in all, %d writes over 32), want the blocked write and one more",
			n, writes, answers, big)
	}
}

// bucket is the cumulative count of h's bucket with upper bound le.
func bucket(h *dto.Histogram, le float64) uint64 {
	for _, b := range h.GetBucket() {
		if b.GetUpperBound() == le {
			return b.GetCumulativeCount()
		}
	}
	return 0
}
