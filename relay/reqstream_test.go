package relay_test

// Tests of protocol.md's "Request streams": many requests on one stream,
// told apart by id, answered as they complete, at most
// spec.MaxRequestsInFlight read ahead per connection.

import (
	"crypto/ed25519"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/quic-go/quic-go"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/spec"
)

// openRequestStream opens a stream on qc and writes the frames of reqs on
// it in one write, leaving it open.
func openRequestStream(t *testing.T, qc *quic.Conn, reqs ...*spec.Request) *quic.Stream {
	t.Helper()
	st, err := qc.OpenStreamSync(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	writeRequests(t, st, reqs...)
	return st
}

func writeRequests(t *testing.T, st *quic.Stream, reqs ...*spec.Request) {
	t.Helper()
	var b []byte
	for _, r := range reqs {
		b = append(b, frame(t, r)...)
	}
	if _, err := st.Write(b); err != nil {
		t.Fatal(err)
	}
}

func readResponse(t *testing.T, st *quic.Stream) *spec.Response {
	t.Helper()
	var resp spec.Response
	if err := spec.ReadFrame(st, 0, &resp); err != nil {
		t.Fatalf("read response: %v", err)
	}
	return &resp
}

func prekeyStatus(id uint64) *spec.Request {
	return &spec.Request{Id: id, Body: &spec.Request_PrekeyStatus{PrekeyStatus: &spec.PreKeyStatusRequest{}}}
}

// sessionOpen is d's open_session frame for the connection whose exporter
// value is exp.
func sessionOpen(t *testing.T, d *device, exp []byte) *spec.Request {
	t.Helper()
	msg, err := spec.AuthMessage(exp, d.AccountID, d.DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	return &spec.Request{Body: &spec.Request_OpenSession{OpenSession: &spec.SessionOpen{
		AccountId: d.AccountID, DeviceId: d.DeviceID, Signature: ed25519.Sign(d.auth, msg),
	}}}
}

// holdSessionStream opens a stream on qc and writes nothing on it yet:
// requests on later streams wait for its first frame, which may be
// open_session (protocol.md, "Requests on other streams"). The relay
// learns of it when a later stream arrives.
func holdSessionStream(t *testing.T, qc *quic.Conn) *quic.Stream {
	t.Helper()
	sess, err := qc.OpenStreamSync(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	return sess
}

// openSessionOn writes d's open_session on sess and waits for ready.
func openSessionOn(t *testing.T, sess *quic.Stream, d *device, exp []byte) {
	t.Helper()
	if _, err := sess.Write(frame(t, sessionOpen(t, d, exp))); err != nil {
		t.Fatal(err)
	}
	if ev := nextRawEvent(t, sess); ev.GetReady() == nil {
		t.Fatalf("session: %v, want ready", ev)
	}
}

// TestRequestStreamAnswersByCompletion sends two requests on one stream:
// the first needs the session, which the client holds back, the second
// does not. The second's answer comes first, with its id; the first is
// answered once the session is verified, and the stream goes on serving.
func TestRequestStreamAnswersByCompletion(t *testing.T) {
	r := startRelay(t, testConfig())
	d := r.register(t, 5)
	qc, exp := r.rawConn(t)

	sess := holdSessionStream(t, qc)
	st := openRequestStream(t, qc, prekeyStatus(7), &spec.Request{Id: 8})
	first := readResponse(t, st)
	if first.Id != 8 || spec.Code(first.GetError().GetCode()) != spec.CodeUnsupported {
		t.Fatalf("first answer %v, want id 8 UNSUPPORTED (the request that needs no session)", first)
	}
	openSessionOn(t, sess, d, exp)
	second := readResponse(t, st)
	if second.Id != 7 || second.GetError() != nil || second.GetPrekeyStatus() == nil {
		t.Fatalf("second answer %v, want id 7 with a prekey status", second)
	}
	if got := second.GetPrekeyStatus().GetStored(); got != 5 {
		t.Fatalf("prekey count %d, want 5", got)
	}

	// The stream stays open for more, and a FIN ends it cleanly after the
	// last answer.
	writeRequests(t, st, prekeyStatus(9))
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if third := readResponse(t, st); third.Id != 9 || third.GetPrekeyStatus() == nil {
		t.Fatalf("third answer %v, want id 9 with a prekey status", third)
	}
	if _, err := st.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last answer: %v, want EOF (the relay's FIN)", err)
	}
}

// TestRequestStreamInFlightLimit holds spec.MaxRequestsInFlight requests
// waiting for the session and puts one that needs none behind them: the
// relay does not read it until a waiting one is answered. One fewer
// waiting request leaves room for it at once.
func TestRequestStreamInFlightLimit(t *testing.T) {
	r := startRelay(t, testConfig())
	d := r.register(t, 5)
	for _, waiting := range []int{spec.MaxRequestsInFlight - 1, spec.MaxRequestsInFlight} {
		qc, exp := r.rawConn(t)
		sess := holdSessionStream(t, qc)
		reqs := make([]*spec.Request, 0, waiting+1)
		for i := range waiting {
			reqs = append(reqs, prekeyStatus(uint64(i+1)))
		}
		last := uint64(waiting + 1)
		reqs = append(reqs, &spec.Request{Id: last})
		st := openRequestStream(t, qc, reqs...)

		seen := map[uint64]bool{}
		if waiting < spec.MaxRequestsInFlight {
			// Below the limit the relay reads the last request and
			// answers it while the others still wait.
			if resp := readResponse(t, st); resp.Id != last {
				t.Fatalf("%d waiting: first answer id %d, want %d", waiting, resp.Id, last)
			}
			seen[last] = true
		}
		openSessionOn(t, sess, d, exp)
		for i := 0; len(seen) < waiting+1; i++ {
			resp := readResponse(t, st)
			if seen[resp.Id] || resp.Id == 0 || resp.Id > last {
				t.Fatalf("%d waiting: answer id %d repeated or unknown", waiting, resp.Id)
			}
			if i == 0 && resp.Id == last {
				t.Fatalf("%d waiting: the request over the limit was answered before any waiting one", waiting)
			}
			if resp.Id != last && resp.GetPrekeyStatus() == nil {
				t.Fatalf("answer %d: %v, want a prekey status", resp.Id, resp)
			}
			seen[resp.Id] = true
		}
	}
}

// TestRequestStreamBadFrame: a frame that is no Request, or an
// open_session after the first frame, is answered with id 0 after the
// requests before it, and the relay ends the stream; the connection
// carries on.
func TestRequestStreamBadFrame(t *testing.T) {
	r := startRelay(t, testConfig())
	d := r.register(t, 5)
	qc, exp := r.rawConn(t)
	openSessionOn(t, holdSessionStream(t, qc), d, exp)
	cases := []struct {
		name string
		bad  []byte
		code spec.Code
	}{
		{"not a protobuf", []byte{0, 0, 0, 2, 0xff, 0xff}, spec.CodeBadRequest},
		{"open_session again", frame(t, sessionOpen(t, d, exp)), spec.CodeProtocol},
		{"open_provisioning", frame(t, &spec.Request{Id: 3, Body: &spec.Request_OpenProvisioning{OpenProvisioning: &spec.ProvisioningOpen{}}}), spec.CodeProtocol},
	}
	for _, tc := range cases {
		st := openRequestStream(t, qc, prekeyStatus(1), prekeyStatus(2))
		if _, err := st.Write(tc.bad); err != nil {
			t.Fatal(err)
		}
		got := map[uint64]bool{}
		for range 2 {
			resp := readResponse(t, st)
			if resp.GetPrekeyStatus() == nil {
				t.Fatalf("%s: answer %v before the bad frame's, want a prekey status", tc.name, resp)
			}
			got[resp.Id] = true
		}
		if !got[1] || !got[2] {
			t.Fatalf("%s: answered ids %v, want 1 and 2", tc.name, got)
		}
		resp := readResponse(t, st)
		if resp.Id != 0 || spec.Code(resp.GetError().GetCode()) != tc.code {
			t.Fatalf("%s: answer %v, want id 0 with %v", tc.name, resp, tc.code)
		}
		if _, err := st.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Fatalf("%s: after the refusal: %v, want EOF", tc.name, err)
		}
	}
	st := openRequestStream(t, qc, prekeyStatus(4))
	if resp := readResponse(t, st); resp.Id != 4 || resp.GetPrekeyStatus() == nil {
		t.Fatalf("a new stream after the refusals: %v", resp)
	}
}

// TestClientPipelines runs many requests at once on one client connection
// (more than the in-flight limit): every one gets its own answer.
func TestClientPipelines(t *testing.T) {
	r := startRelay(t, testConfig())
	a := r.register(t, 5)
	b := r.register(t, 5)
	ca := r.session(t, a, 0)
	cb := r.session(t, b, 256)
	const n = 3 * spec.MaxRequestsInFlight
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			if i%2 == 0 {
				k, err := ca.FetchKeys(ctxT(t), b.AccountID)
				if err == nil && len(k.Devices) != 1 {
					err = errors.New("fetch keys: wrong device count")
				}
				errs <- err
				return
			}
			_, err := ca.Send(ctxT(t), &client.Message{
				Recipient: b.AccountID, ClientMessageID: randomID(t),
				Devices: []client.DeviceMessage{{DeviceID: 1, Content: []byte{byte(i)}}},
			})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got := map[byte]bool{}
	for len(got) < n/2 {
		e := nextEnvelope(t, cb)
		got[e.Content[0]] = true
		if err := cb.Ack(e.Seq); err != nil {
			t.Fatal(err)
		}
	}
}

// TestClientNewStreamAfterRefusal: the relay refuses a frame it cannot
// take (a register over the unauthenticated cap) with id 0 and ends the
// stream; the client fails that request with the relay's code and opens
// a new stream for the next, which succeeds.
func TestClientNewStreamAfterRefusal(t *testing.T) {
	r := startRelay(t, testConfig())
	c := r.dial(t)
	big, _ := newRegistration(t, 600) // over 16 KiB
	_, err := c.Register(ctxT(t), big)
	var ce *client.Error
	if !errors.As(err, &ce) || spec.Code(ce.Code) != spec.CodeFrameTooLarge {
		t.Fatalf("register over the cap: %v, want FRAME_TOO_LARGE", err)
	}
	small, _ := newRegistration(t, 5)
	if _, err := c.Register(ctxT(t), small); err != nil {
		t.Fatalf("register on the same connection after the refusal: %v", err)
	}
}
