package relay_test

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/quic-go/quic-go"
	"google.golang.org/protobuf/proto"

	"github.com/pigeonhole/pigeonhole/keys"
	"github.com/pigeonhole/pigeonhole/queue"
	"github.com/pigeonhole/pigeonhole/relay"
	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/spec"
)

// rawConn is a bare QUIC connection to the relay, for sending what the
// client package never would.
func (r *testRelay) rawConn(t *testing.T) (*quic.Conn, []byte) {
	t.Helper()
	qc, err := quic.DialAddr(ctxT(t), r.opts.Addr, &tls.Config{
		InsecureSkipVerify: true, NextProtos: []string{spec.ALPN}, MinVersion: tls.VersionTLS13,
	}, nil)
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

// rawExchange writes raw bytes on a new stream, closes it and decodes the
// one Response frame.
func rawExchange(t *testing.T, qc *quic.Conn, raw []byte) *spec.Response {
	t.Helper()
	st, err := qc.OpenStreamSync(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write(raw); err != nil {
		t.Fatal(err)
	}
	st.Close()
	var resp spec.Response
	if err := spec.ReadFrame(st, 0, &resp); err != nil {
		t.Fatalf("read response: %v", err)
	}
	return &resp
}

func frame(t *testing.T, m proto.Message) []byte {
	b, err := spec.AppendFrame(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func wantRespCode(t *testing.T, resp *spec.Response, code spec.Code) {
	t.Helper()
	if resp.Error == nil || spec.Code(resp.Error.Code) != code || resp.Error.Message == "" {
		t.Fatalf("response %v, want error %s with a sentence", resp, code)
	}
}

func TestFrameErrors(t *testing.T) {
	r := startRelay(t, testConfig())
	qc, _ := r.rawConn(t)
	t.Run("too large", func(t *testing.T) {
		var hdr [4]byte
		binary.BigEndian.PutUint32(hdr[:], spec.MaxFrameSize+1)
		wantRespCode(t, rawExchange(t, qc, hdr[:]), spec.CodeFrameTooLarge)
	})
	t.Run("not protobuf", func(t *testing.T) {
		wantRespCode(t, rawExchange(t, qc, []byte{0, 0, 0, 3, 0xff, 0xff, 0xff}), spec.CodeBadRequest)
	})
	t.Run("truncated", func(t *testing.T) {
		wantRespCode(t, rawExchange(t, qc, []byte{0, 0, 0, 9, 1, 2}), spec.CodeBadRequest)
	})
	t.Run("empty request", func(t *testing.T) {
		wantRespCode(t, rawExchange(t, qc, frame(t, &spec.Request{})), spec.CodeUnsupported)
	})
	// The connection survives bad input.
	wantRespCode(t, rawExchange(t, qc, frame(t, &spec.Request{Body: &spec.Request_FetchKeys{FetchKeys: &spec.FetchKeysRequest{}}})), spec.CodeUnauthenticated)
}

func TestAuthErrors(t *testing.T) {
	r := startRelay(t, testConfig())
	bob := r.register(t, 0)

	t.Run("unauthenticated", func(t *testing.T) {
		c := r.dial(t)
		_, err := c.FetchKeys(ctxT(t), bob.AccountID)
		wantCode(t, err, spec.CodeUnauthenticated)
		_, err = sendText(t, c, bob, []uint32{1}, "x")
		wantCode(t, err, spec.CodeUnauthenticated)
	})
	t.Run("wrong key", func(t *testing.T) {
		_, other, _ := ed25519.GenerateKey(nil)
		c := r.dial(t)
		_, err := c.Authenticate(ctxT(t), &client.Credentials{AccountID: bob.AccountID, DeviceID: 1, AuthKey: other}, 1)
		wantCode(t, err, spec.CodeBadSignature)
		// Requests on a connection whose session was refused fail too.
		_, err = c.PreKeyStatus(ctxT(t))
		wantCode(t, err, spec.CodeBadSignature)
	})
	t.Run("unknown device", func(t *testing.T) {
		c := r.dial(t)
		_, err := c.Authenticate(ctxT(t), &client.Credentials{AccountID: bob.AccountID, DeviceID: 7, AuthKey: bob.auth}, 1)
		wantCode(t, err, spec.CodeUnknownDevice)
		c2 := r.dial(t)
		_, err = c2.Authenticate(ctxT(t), &client.Credentials{AccountID: randomID(t), DeviceID: 1, AuthKey: bob.auth}, 1)
		wantCode(t, err, spec.CodeUnknownDevice)
	})
	t.Run("removed device", func(t *testing.T) {
		carol := r.register(t, 0)
		var acct keys.AccountID
		copy(acct[:], carol.AccountID)
		if err := r.keys.RemoveDevice(ctxT(t), acct, 1); err != nil {
			t.Fatal(err)
		}
		c := r.dial(t)
		_, err := c.Authenticate(ctxT(t), carol.creds(), 1)
		wantCode(t, err, spec.CodeUnknownDevice)
	})
	t.Run("replayed signature", func(t *testing.T) {
		// A signature made for one connection is refused on another.
		qc1, exp1 := r.rawConn(t)
		qc2, _ := r.rawConn(t)
		msg, err := spec.AuthMessage(exp1, bob.AccountID, 1)
		if err != nil {
			t.Fatal(err)
		}
		open := &spec.SessionOpen{AccountId: bob.AccountID, DeviceId: 1, Signature: ed25519.Sign(bob.auth, msg), Window: 1}
		req := frame(t, &spec.Request{Body: &spec.Request_OpenSession{OpenSession: open}})
		if ev := rawSession(t, qc2, req); ev.GetError() == nil || spec.Code(ev.GetError().Code) != spec.CodeBadSignature {
			t.Fatalf("replayed signature answered %v", ev)
		}
		if ev := rawSession(t, qc1, req); ev.GetReady() == nil {
			t.Fatalf("own connection answered %v", ev)
		}
		// A second session stream on one connection is a protocol error.
		if ev := rawSession(t, qc1, req); ev.GetError() == nil || spec.Code(ev.GetError().Code) != spec.CodeProtocol {
			t.Fatalf("second session answered %v", ev)
		}
	})
}

// rawSession writes a SessionOpen request and returns the first event.
func rawSession(t *testing.T, qc *quic.Conn, req []byte) *spec.ServerEvent {
	t.Helper()
	st, err := qc.OpenStreamSync(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write(req); err != nil {
		t.Fatal(err)
	}
	var ev spec.ServerEvent
	if err := spec.ReadFrame(st, 0, &ev); err != nil {
		t.Fatal(err)
	}
	return &ev
}

func TestKeyErrors(t *testing.T) {
	r := startRelay(t, testConfig())
	c := r.dial(t)
	t.Run("invalid key", func(t *testing.T) {
		reg, _ := newRegistration(t, 0)
		reg.IdentityKey = reg.IdentityKey[:32]
		_, err := c.Register(ctxT(t), reg)
		wantCode(t, err, spec.CodeInvalidKey)
	})
	t.Run("bad prekey signature", func(t *testing.T) {
		reg, _ := newRegistration(t, 0)
		reg.SignedPreKey.Signature = append([]byte(nil), reg.SignedPreKey.Signature...)
		reg.SignedPreKey.Signature[10] ^= 1
		_, err := c.Register(ctxT(t), reg)
		wantCode(t, err, spec.CodeBadPreKeySignature)
	})
	t.Run("signed by another identity", func(t *testing.T) {
		reg, _ := newRegistration(t, 0)
		other, _ := newRegistration(t, 0)
		reg.SignedPreKey = other.SignedPreKey
		_, err := c.Register(ctxT(t), reg)
		wantCode(t, err, spec.CodeBadPreKeySignature)
	})
	t.Run("too many prekeys", func(t *testing.T) {
		reg, _ := newRegistration(t, 101)
		_, err := c.Register(ctxT(t), reg)
		wantCode(t, err, spec.CodeTooManyPreKeys)
		d := r.register(t, 0)
		sc := r.session(t, d, 0)
		_, err = sc.UploadPreKeys(ctxT(t), reg.PreKeys)
		wantCode(t, err, spec.CodeTooManyPreKeys)
		n, err := sc.UploadPreKeys(ctxT(t), reg.PreKeys[:100])
		if err != nil || n != 100 {
			t.Fatalf("upload 100: %d, %v", n, err)
		}
	})
	t.Run("bad auth proof", func(t *testing.T) {
		qc, exp := r.rawConn(t)
		reg, _ := newRegistration(t, 0)
		pub := ed25519.PrivateKey(reg.AuthKey).Public().(ed25519.PublicKey)
		proof, _ := spec.RegisterProof(exp, pub)
		sig := ed25519.Sign(reg.AuthKey, proof)
		sig[0] ^= 1
		resp := rawExchange(t, qc, frame(t, &spec.Request{Body: &spec.Request_Register{Register: &spec.RegisterRequest{
			AuthKey: pub, AuthProof: sig, IdentityKey: reg.IdentityKey, RegistrationId: reg.RegistrationID,
			SignedPrekey: &spec.SignedPreKey{Id: 1, PublicKey: reg.SignedPreKey.PublicKey, Signature: reg.SignedPreKey.Signature},
		}}}))
		wantRespCode(t, resp, spec.CodeBadSignature)
	})
	t.Run("unknown account", func(t *testing.T) {
		d := r.register(t, 0)
		sc := r.session(t, d, 0)
		_, err := sc.FetchKeys(ctxT(t), randomID(t))
		wantCode(t, err, spec.CodeUnknownAccount)
		_, err = sendText(t, sc, &device{Account: client.Account{AccountID: randomID(t)}}, []uint32{1}, "x")
		wantCode(t, err, spec.CodeUnknownAccount)
	})
	t.Run("bad request", func(t *testing.T) {
		d := r.register(t, 0)
		sc := r.session(t, d, 0)
		_, err := sc.Send(ctxT(t), &client.Message{Recipient: d.AccountID[:3], ClientMessageID: randomID(t)})
		wantCode(t, err, spec.CodeBadRequest)
	})
}

func TestRateLimits(t *testing.T) {
	cfg := testConfig()
	cfg.RegisterLimit = relay.Limit{Burst: 2, Every: 1 << 40}
	cfg.FetchLimit = relay.Limit{Burst: 3, Every: 1 << 40}
	r := startRelay(t, cfg)
	a, b := r.register(t, 0), r.register(t, 0)
	reg, _ := newRegistration(t, 0)
	_, err := r.dial(t).Register(ctxT(t), reg)
	if e := wantCode(t, err, spec.CodeRateLimited); e.RetryAfterMillis == 0 {
		t.Fatal("no retry_after_ms")
	}
	ac := r.session(t, a, 0)
	for range 3 {
		if _, err := ac.FetchKeys(ctxT(t), b.AccountID); err != nil {
			t.Fatal(err)
		}
	}
	_, err = ac.FetchKeys(ctxT(t), b.AccountID)
	wantCode(t, err, spec.CodeRateLimited)
}

func TestQueueLimits(t *testing.T) {
	cfg := testConfig()
	cfg.MaxEnvelopeBytes = 1024
	r := startRelayWith(t, cfg, queue.Config{MaxCount: 2, SenderMaxCount: 2})
	alice, bob := r.register(t, 0), r.register(t, 0)
	ac := r.session(t, alice, 0)
	_, err := ac.Send(ctxT(t), &client.Message{Recipient: bob.AccountID, ClientMessageID: randomID(t),
		Devices: []client.DeviceMessage{{DeviceID: 1, Content: make([]byte, 1025)}}})
	wantCode(t, err, spec.CodeEnvelopeTooLarge)
	for range 2 {
		if _, err := sendText(t, ac, bob, []uint32{1}, "x"); err != nil {
			t.Fatal(err)
		}
	}
	_, err = sendText(t, ac, bob, []uint32{1}, "x")
	wantCode(t, err, spec.CodeQueueFull)
}

// failingQueues is a hand-written fake at the storage edge: appends fail,
// as when a disk is full.
type failingQueues struct{ relay.Queues }

var errDiskFull = errors.New("disk full")

func (failingQueues) Append(context.Context, []byte, []queue.Message) (queue.AppendResult, error) {
	return queue.AppendResult{}, errDiskFull
}

func TestInternalError(t *testing.T) {
	base := startRelay(t, testConfig())
	srv, err := relay.New(testConfig(), base.keys, failingQueues{base.queues}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := relay.LoadOrCreateCertificate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := srv.Listen("127.0.0.1:0", cert)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	alice, bob := base.register(t, 0), base.register(t, 0)
	r := &testRelay{opts: client.Options{Addr: ln.Addr().String(), Fingerprint: relay.Fingerprint(cert)}}
	ac := r.session(t, alice, 0)
	_, err = sendText(t, ac, bob, []uint32{1}, "x")
	wantCode(t, err, spec.CodeInternal)
}
