package relay_test

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/pigeonhole/pigeonhole/spec"
)

// startShutdown opens, on a fresh bare connection, stream 0 (which sends
// nothing yet, so the relay must wait for its first frame: it may be the
// session) and stream 4 with a prekey_status request (which therefore
// waits for authentication), proves with an answered probe on stream 8
// that the relay has accepted all three, and then begins the relay's
// shutdown. It returns the connection, stream 0 and stream 4.
func startShutdown(t *testing.T, r *testRelay) (*quic.Conn, *quic.Stream, *quic.Stream) {
	t.Helper()
	qc, _ := r.rawConn(t)
	first, err := qc.OpenStreamSync(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	waiting, err := qc.OpenStreamSync(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := waiting.Write(frame(t, &spec.Request{Body: &spec.Request_PrekeyStatus{PrekeyStatus: &spec.PreKeyStatusRequest{}}})); err != nil {
		t.Fatal(err)
	}
	waiting.Close()
	// The relay accepts streams in order: an answer on stream 8 means it
	// has streams 0 and 4 too.
	wantRespCode(t, rawExchange(t, qc, frame(t, &spec.Request{})), spec.CodeUnsupported)
	r.cancel()
	var resp spec.Response
	if err := spec.ReadFrame(waiting, 0, &resp); err != nil {
		t.Fatalf("request waiting for its session: no answer (%v)", err)
	}
	wantRespCode(t, &resp, spec.CodeShuttingDown)
	return qc, first, waiting
}

// TestShutdownAnswersShuttingDown pins protocol.md "Closing": once the
// relay begins to shut down, a request waiting for its session and a
// request that arrives afterwards are both answered SHUTTING_DOWN, and
// only then is the connection closed with 0x3.
func TestShutdownAnswersShuttingDown(t *testing.T) {
	cfg := testConfig()
	cfg.ShutdownGrace = time.Minute // never what ends the test
	r := startRelay(t, cfg)
	qc, first, _ := startShutdown(t, r)

	// Stream 0's first frame arrives during the shutdown: a register
	// (which needs no session, and would otherwise be refused for its
	// empty keys) is answered SHUTTING_DOWN.
	if _, err := first.Write(frame(t, &spec.Request{Body: &spec.Request_Register{Register: &spec.RegisterRequest{}}})); err != nil {
		t.Fatal(err)
	}
	first.Close()
	var resp spec.Response
	if err := spec.ReadFrame(first, 0, &resp); err != nil {
		t.Fatalf("request during shutdown: no answer (%v)", err)
	}
	wantRespCode(t, &resp, spec.CodeShuttingDown)

	// Nothing left in progress: the going-away close follows.
	waitClosedWith(t, qc, spec.CloseGoingAway)
}

// TestShutdownRefusesNewSession: an open_session read during the shutdown
// is refused with an error event SHUTTING_DOWN, then the 0x3 close.
func TestShutdownRefusesNewSession(t *testing.T) {
	cfg := testConfig()
	cfg.ShutdownGrace = time.Minute
	r := startRelay(t, cfg)
	bob := r.register(t, 0)
	qc, first, _ := startShutdown(t, r)

	cs := qc.ConnectionState().TLS
	exp, err := cs.ExportKeyingMaterial(spec.ExporterLabel, nil, spec.ExporterLength)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := spec.AuthMessage(exp, bob.AccountID, bob.DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	open := &spec.Request{Body: &spec.Request_OpenSession{OpenSession: &spec.SessionOpen{
		AccountId: bob.AccountID, DeviceId: bob.DeviceID, Signature: ed25519.Sign(bob.auth, msg), Window: 1,
	}}}
	if _, err := first.Write(frame(t, open)); err != nil {
		t.Fatal(err)
	}
	var ev spec.ServerEvent
	if err := spec.ReadFrame(first, 0, &ev); err != nil {
		t.Fatalf("session during shutdown: no answer (%v)", err)
	}
	if spec.Code(ev.GetError().GetCode()) != spec.CodeShuttingDown {
		t.Fatalf("session during shutdown: %v, want SHUTTING_DOWN", &ev)
	}
	waitClosedWith(t, qc, spec.CloseGoingAway)
}
