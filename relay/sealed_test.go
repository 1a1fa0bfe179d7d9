package relay_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/pigeonhole/pigeonhole/keys"
	"github.com/pigeonhole/pigeonhole/queue"
	"github.com/pigeonhole/pigeonhole/relay"
	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/spec"
)

func accessKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, spec.AccessKeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// sealedTo is a sealed send of content to every named device of to.
func sealedTo(to *device, key []byte, devs []uint32, content string) *client.SealedMessage {
	m := &client.SealedMessage{Recipient: to.AccountID, AccessKey: key, ClientMessageID: make([]byte, 16)}
	_, _ = rand.Read(m.ClientMessageID)
	for _, d := range devs {
		m.Devices = append(m.Devices, client.DeviceMessage{DeviceID: d, Content: []byte(content)})
	}
	return m
}

// TestSealedSend: a sealed send with the recipient's access key is
// accepted on a connection that never authenticated, and the recipient
// gets an envelope flagged sealed with no sender; a wrong key, no key
// set, and an unknown account are all refused UNIDENTIFIED_ACCESS and
// store nothing; a rotated key replaces the old one. A sealed send made
// on the sender's own authenticated connection stores no sender either:
// the relay never reads the connection's identity for it.
func TestSealedSend(t *testing.T) {
	r := startRelay(t, testConfig())
	alice := r.register(t, 1)
	bob := r.register(t, 1)
	stranger := r.dial(t) // never authenticates

	// No verifier set yet: refused.
	key := accessKey(t)
	_, err := stranger.SealedSend(ctxT(t), sealedTo(alice, key, []uint32{1}, "too early"))
	wantCode(t, err, spec.CodeUnidentified)

	aliceConn := r.session(t, alice, 16)
	if err := aliceConn.SetUnidentifiedAccess(ctxT(t), key, false); err != nil {
		t.Fatal(err)
	}
	_, err = stranger.SealedSend(ctxT(t), sealedTo(alice, accessKey(t), []uint32{1}, "wrong key"))
	wantCode(t, err, spec.CodeUnidentified)
	var unknown device
	unknown.AccountID = randomID(t)
	_, err = stranger.SealedSend(ctxT(t), sealedTo(&unknown, key, []uint32{1}, "nobody"))
	wantCode(t, err, spec.CodeUnidentified) // the same answer: no probing for accounts
	if _, err := stranger.SealedSend(ctxT(t), sealedTo(alice, key, []uint32{1}, "sealed one")); err != nil {
		t.Fatalf("sealed send with the right key: %v", err)
	}
	env := nextEnvelope(t, aliceConn)
	if !env.Sealed || len(env.Sender) != 0 || env.SenderDevice != 0 || env.Type != 0 || string(env.Content) != "sealed one" {
		t.Fatalf("envelope = %+v, want sealed, no sender, type 0, content \"sealed one\"", env)
	}
	if err := aliceConn.Ack(env.Seq); err != nil {
		t.Fatal(err)
	}

	// On bob's authenticated connection: still no sender stored.
	bobConn := r.session(t, bob, 0)
	if _, err := bobConn.SealedSend(ctxT(t), sealedTo(alice, key, []uint32{1}, "from bob, sealed")); err != nil {
		t.Fatal(err)
	}
	items, err := r.queues.Read(ctxT(t), queue.Address{Account: keys.AccountID(alice.AccountID), Device: 1}, 0, 100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 {
		t.Fatalf("%d queued, want 1", len(items))
	}
	if bytes.Contains(items[0].Body, bob.AccountID) {
		t.Fatal("the stored sealed envelope holds the sender's account id")
	}
	var stored spec.Envelope
	if err := proto.Unmarshal(items[0].Body, &stored); err != nil {
		t.Fatal(err)
	}
	if !stored.Sealed || stored.Sender != nil || stored.SenderDevice != 0 {
		t.Fatalf("stored envelope %v, want sealed without sender fields", &stored)
	}
	if env := nextEnvelope(t, aliceConn); !env.Sealed || len(env.Sender) != 0 {
		t.Fatalf("second envelope %+v, want sealed without sender", env)
	}

	// Rotation: the old key stops working, the new one works.
	rotated := accessKey(t)
	if err := aliceConn.SetUnidentifiedAccess(ctxT(t), rotated, false); err != nil {
		t.Fatal(err)
	}
	_, err = stranger.SealedSend(ctxT(t), sealedTo(alice, key, []uint32{1}, "old key"))
	wantCode(t, err, spec.CodeUnidentified)
	if _, err := stranger.SealedSend(ctxT(t), sealedTo(alice, rotated, []uint32{1}, "new key")); err != nil {
		t.Fatalf("sealed send with the rotated key: %v", err)
	}

	// Stale device lists and a type are refused as for identified sends.
	_, err = stranger.SealedSend(ctxT(t), sealedTo(alice, rotated, []uint32{1, 2}, "stale"))
	if e := wantCode(t, err, spec.CodeStaleDevices); !slices.Equal(e.Extra, []uint32{2}) {
		t.Fatalf("extra devices %v, want [2]", e.Extra)
	}
	typed := sealedTo(alice, rotated, []uint32{1}, "typed")
	typed.Devices[0].Type = 3
	_, err = stranger.SealedSend(ctxT(t), typed)
	wantCode(t, err, spec.CodeBadRequest)
}

// TestSealedAllowAnyone: an account that allows anyone takes sealed sends
// with any key; clearing it refuses them again.
func TestSealedAllowAnyone(t *testing.T) {
	r := startRelay(t, testConfig())
	alice := r.register(t, 1)
	aliceConn := r.session(t, alice, 0)
	stranger := r.dial(t)
	if err := aliceConn.SetUnidentifiedAccess(ctxT(t), nil, true); err != nil {
		t.Fatal(err)
	}
	if _, err := stranger.SealedSend(ctxT(t), sealedTo(alice, accessKey(t), []uint32{1}, "anyone")); err != nil {
		t.Fatalf("allow anyone: %v", err)
	}
	if err := aliceConn.SetUnidentifiedAccess(ctxT(t), nil, false); err != nil {
		t.Fatal(err)
	}
	_, err := stranger.SealedSend(ctxT(t), sealedTo(alice, accessKey(t), []uint32{1}, "no longer"))
	wantCode(t, err, spec.CodeUnidentified)
}

// TestSealedLimits: the per-recipient, per-access-key and per-source
// refusal limits, each refusing with RATE_LIMITED and a retry hint, and
// the per-sender queue share applied with the access key in place of
// the sender (identified senders keep their own share).
func TestSealedLimits(t *testing.T) {
	hour := time.Hour
	t.Run("recipient", func(t *testing.T) {
		cfg := testConfig()
		cfg.SealedRecipientLimit = relay.Limit{Burst: 2, Every: hour}
		r := startRelay(t, cfg)
		alice, carol := r.register(t, 1), r.register(t, 1)
		key := accessKey(t)
		for _, d := range []*device{alice, carol} {
			if err := r.session(t, d, 0).SetUnidentifiedAccess(ctxT(t), key, true); err != nil {
				t.Fatal(err)
			}
		}
		c := r.dial(t)
		for i := range 2 {
			// Two senders: one with the key, one without (allow anyone):
			// both count for the recipient.
			k := key
			if i == 1 {
				k = accessKey(t)
			}
			if _, err := c.SealedSend(ctxT(t), sealedTo(alice, k, []uint32{1}, "x")); err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
		}
		_, err := c.SealedSend(ctxT(t), sealedTo(alice, key, []uint32{1}, "x"))
		if e := wantCode(t, err, spec.CodeRateLimited); e.RetryAfterMillis == 0 {
			t.Fatal("no retry_after_ms")
		}
		if _, err := c.SealedSend(ctxT(t), sealedTo(carol, key, []uint32{1}, "x")); err != nil {
			t.Fatalf("another recipient: %v", err)
		}
	})
	t.Run("access key", func(t *testing.T) {
		cfg := testConfig()
		cfg.SealedKeyLimit = relay.Limit{Burst: 2, Every: hour}
		r := startRelay(t, cfg)
		alice := r.register(t, 1)
		key := accessKey(t)
		if err := r.session(t, alice, 0).SetUnidentifiedAccess(ctxT(t), key, true); err != nil {
			t.Fatal(err)
		}
		c := r.dial(t)
		for i := range 2 {
			if _, err := c.SealedSend(ctxT(t), sealedTo(alice, key, []uint32{1}, "x")); err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
		}
		_, err := c.SealedSend(ctxT(t), sealedTo(alice, key, []uint32{1}, "x"))
		wantCode(t, err, spec.CodeRateLimited)
		// Without the key (allow anyone) the stand-in is the source's,
		// with a bucket of its own.
		if _, err := c.SealedSend(ctxT(t), sealedTo(alice, accessKey(t), []uint32{1}, "x")); err != nil {
			t.Fatalf("anyone, after the key's limit: %v", err)
		}
	})
	t.Run("refusals", func(t *testing.T) {
		cfg := testConfig()
		cfg.SealedRefusalLimit = relay.Limit{Burst: 2, Every: hour}
		r := startRelay(t, cfg)
		alice := r.register(t, 1)
		key := accessKey(t)
		if err := r.session(t, alice, 0).SetUnidentifiedAccess(ctxT(t), key, false); err != nil {
			t.Fatal(err)
		}
		c := r.dial(t)
		_, err := c.SealedSend(ctxT(t), sealedTo(alice, accessKey(t), []uint32{1}, "guess"))
		wantCode(t, err, spec.CodeUnidentified)
		for i := range 3 { // accepted sends cost nothing here
			if _, err := c.SealedSend(ctxT(t), sealedTo(alice, key, []uint32{1}, "x")); err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
		}
		_, err = c.SealedSend(ctxT(t), sealedTo(alice, accessKey(t), []uint32{1}, "guess"))
		wantCode(t, err, spec.CodeUnidentified)
		// The source's refusals are used up: even the right key waits.
		_, err = c.SealedSend(ctxT(t), sealedTo(alice, key, []uint32{1}, "x"))
		wantCode(t, err, spec.CodeRateLimited)
	})
	t.Run("queue share", func(t *testing.T) {
		r := startRelayWith(t, testConfig(), queue.Config{SenderMaxCount: 2})
		alice, bob := r.register(t, 1), r.register(t, 1)
		key := accessKey(t)
		if err := r.session(t, alice, 0).SetUnidentifiedAccess(ctxT(t), key, false); err != nil {
			t.Fatal(err)
		}
		c := r.dial(t)
		for i := range 2 {
			if _, err := c.SealedSend(ctxT(t), sealedTo(alice, key, []uint32{1}, "x")); err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
		}
		_, err := c.SealedSend(ctxT(t), sealedTo(alice, key, []uint32{1}, "x"))
		wantCode(t, err, spec.CodeSenderShare)
		if _, err := sendText(t, r.session(t, bob, 0), alice, []uint32{1}, "identified"); err != nil {
			t.Fatalf("an identified sender after the sealed share is used up: %v", err)
		}
	})
}

// TestSealedConnStaysUnauthenticated: sealed sends do not establish a
// connection; it is closed at the auth deadline like any other that did
// not authenticate (the client dials again for later sends).
func TestSealedConnStaysUnauthenticated(t *testing.T) {
	cfg := testConfig()
	cfg.AuthWait = 2 * time.Second
	r := startRelay(t, cfg)
	alice := r.register(t, 1)
	if err := r.session(t, alice, 0).SetUnidentifiedAccess(ctxT(t), nil, true); err != nil {
		t.Fatal(err)
	}
	c := r.dial(t)
	if _, err := c.SealedSend(ctxT(t), sealedTo(alice, accessKey(t), []uint32{1}, "x")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-time.After(time.Minute):
		t.Fatal("a connection with only sealed sends stayed open past the auth deadline")
	}
	if !isAppError(c.Err(), spec.CloseAuthTimeout) {
		t.Fatalf("closed with %v, want 0x5", c.Err())
	}
}

// TestSenderCertificate: an authenticated device gets a certificate,
// signed by the listed current server key, binding its account, device
// and identity key, expiring after the configured lifetime; without a
// session the request is refused; a relay without certificate keys
// answers UNSUPPORTED.
func TestSenderCertificate(t *testing.T) {
	dir := t.TempDir()
	ck, err := relay.LoadOrCreateSenderCertKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.SenderCertLifetime = 3 * time.Hour
	r := startRelaySetup(t, cfg, queue.Config{}, t.TempDir(), "127.0.0.1:0", slog.New(slog.DiscardHandler),
		func(s *relay.Server, _ *pebble.DB, _ *prometheus.Registry) { s.UseSenderCertificates(ck) })
	alice := r.register(t, 1)
	conn := r.session(t, alice, 0)
	before := time.Now()
	cert, servers, err := conn.SenderCertificate(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(servers) != 1 || servers[0].ID != ck.Current().ID || !bytes.Equal(servers[0].PublicKey, ck.Current().Public()) {
		t.Fatalf("server keys %+v, want the current one only", servers)
	}
	var sc spec.SenderCertificate
	if err := proto.Unmarshal(cert.Raw, &sc); err != nil {
		t.Fatal(err)
	}
	if !ed25519.Verify(servers[0].PublicKey, spec.SenderCertificateMessage(sc.Certificate), sc.Signature) {
		t.Fatal("the certificate's signature does not verify under the listed key")
	}
	var body spec.SenderCertificateBody
	if err := proto.Unmarshal(sc.Certificate, &body); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(body.AccountId, alice.AccountID) || body.DeviceId != 1 ||
		!bytes.Equal(body.IdentityKey, alice.identity.PublicKey().Serialize()) || body.KeyId != ck.Current().ID {
		t.Fatalf("certificate body %v does not bind alice's device", &body)
	}
	if exp := time.UnixMilli(body.ExpiresMs); exp.Before(before.Add(3*time.Hour-time.Minute)) || exp.After(time.Now().Add(3*time.Hour+time.Minute)) {
		t.Fatalf("expires %v, want in 3 hours", exp)
	}

	_, _, err = r.dial(t).SenderCertificate(ctxT(t))
	wantCode(t, err, spec.CodeUnauthenticated)

	plain := startRelay(t, testConfig())
	bob := plain.register(t, 1)
	_, _, err = plain.session(t, bob, 0).SenderCertificate(ctxT(t))
	wantCode(t, err, spec.CodeUnsupported)
}

// TestSenderCertKeyRotation: a rotated key signs after a reload; the old
// one stays listed for a certificate lifetime after that, then goes.
func TestSenderCertKeyRotation(t *testing.T) {
	dir := t.TempDir()
	first, err := relay.LoadOrCreateSenderCertKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	again, err := relay.LoadOrCreateSenderCertKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if again.Current().ID != first.Current().ID || !bytes.Equal(again.Current().Public(), first.Current().Public()) {
		t.Fatal("a second start made a new key")
	}
	if _, err := relay.RotateSenderCertKey(dir, time.Now()); err != nil {
		t.Fatal(err)
	}
	ks, err := relay.LoadSenderCertKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ks.Current().ID != first.Current().ID+1 {
		t.Fatalf("current key %d after rotation, want %d", ks.Current().ID, first.Current().ID+1)
	}
	now, life := time.Now(), 24*time.Hour
	if l := ks.Listed(now, life); len(l) != 2 || l[0].ID != ks.Current().ID || l[1].ID != first.Current().ID {
		t.Fatalf("listed %v right after rotation, want the new key, then the old", l)
	}
	if l := ks.Listed(now.Add(life+time.Minute), life); len(l) != 1 || l[0].ID != ks.Current().ID {
		t.Fatalf("listed %v a lifetime later, want only the new key", l)
	}
}
