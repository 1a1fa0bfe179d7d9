package messenger

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pigeonhole/pigeonhole/queue"
	"github.com/pigeonhole/pigeonhole/relay"
	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/spec"
)

// stored is one envelope as the relay's disk has it.
type stored struct {
	*spec.Envelope
	raw []byte
}

// queued returns the envelopes the relay holds for a device.
func queued(t *testing.T, r *testRelay, acct []byte, dev uint32) []stored {
	t.Helper()
	var a queue.Address
	copy(a.Account[:], acct)
	a.Device = dev
	items, err := r.queues.Read(context.Background(), a, 0, 1000, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]stored, len(items))
	for i, it := range items {
		var env spec.Envelope
		if err := proto.Unmarshal(it.Body, &env); err != nil {
			t.Fatal(err)
		}
		out[i] = stored{&env, it.Body}
	}
	return out
}

// checkSealed fails unless env is sealed, names no sender, and its
// stored bytes hold no trace of the sender's account id.
func checkSealed(t *testing.T, env stored, sender []byte) {
	t.Helper()
	raw := env.raw
	if !env.GetSealed() || len(env.GetSender()) != 0 || env.GetSenderDevice() != 0 || env.GetType() != 0 || bytes.Contains(raw, sender) {
		t.Fatalf("stored envelope not sealed: sealed %v, sender %x, device %d, type %d, sender id in its bytes %v",
			env.GetSealed(), env.GetSender(), env.GetSenderDevice(), env.GetType(), bytes.Contains(raw, sender))
	}
}

func checkIdentified(t *testing.T, env stored, sender []byte) {
	t.Helper()
	if env.GetSealed() || !bytes.Equal(env.GetSender(), sender) {
		t.Fatalf("stored envelope: sealed %v, sender %x; want identified from %x", env.GetSealed(), env.GetSender(), sender)
	}
}

// waitQueued waits until n envelopes are queued for the device: the
// delivered receipts a running device sends in the background, so that
// the checks of what a send queued see that send's envelope last.
func waitQueued(t *testing.T, r *testRelay, acct []byte, dev uint32, n int) {
	t.Helper()
	var a queue.Address
	copy(a.Account[:], acct)
	a.Device = dev
	woke, cancel := r.queues.Watch(a)
	defer cancel()
	deadline := time.After(patience)
	for len(queued(t, r, acct, dev)) < n {
		select {
		case <-woke:
		case <-deadline:
			t.Fatalf("fewer than %d envelopes queued within %v", n, patience)
		}
	}
}

func last(t *testing.T, envs []stored) stored {
	t.Helper()
	if len(envs) == 0 {
		t.Fatal("nothing queued")
	}
	return envs[len(envs)-1]
}

func keyFile(dir string, acct []byte) string {
	return filepath.Join(dir, "access-keys", hex.EncodeToString(acct))
}

// TestSealedSend: a first message goes identified (no access key yet)
// and carries the sender's access key; the answer goes sealed, the
// relay stores it without a sender, and the recipient sees who wrote.
func TestSealedSend(t *testing.T) {
	r := newRelay(t)
	alice, bob := register(t, r), register(t, r)
	ctx := ctxT(t)
	own, err := os.ReadFile(filepath.Join(alice.dir, "access-key"))
	if err != nil || len(own) != spec.AccessKeySize {
		t.Fatalf("alice's access key: %d bytes, %v", len(own), err)
	}
	res, err := alice.Send(ctx, bob.AccountID(), &Content{Text: "hello bob"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sealed || res.IdentifiedReason != ReasonNoAccessKey {
		t.Fatalf("first send: sealed %v, reason %q", res.Sealed, res.IdentifiedReason)
	}
	checkIdentified(t, last(t, queued(t, r, bob.AccountID(), 1)), alice.AccountID())

	bob.run(t)
	nextMessage(t, bob.rec, "hello bob")
	got, err := os.ReadFile(keyFile(bob.dir, alice.AccountID()))
	if err != nil || !bytes.Equal(got, own) {
		t.Fatalf("bob kept alice's key %x (%v), want %x", got, err, own)
	}
	if st, err := os.Stat(keyFile(bob.dir, alice.AccountID())); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v", st.Mode(), err)
	}
	res, err = bob.Send(ctx, alice.AccountID(), &Content{Text: "hi alice"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Sealed || res.IdentifiedReason != "" || res.Devices != 1 {
		t.Fatalf("answer: %+v, want sealed to 1 device", res)
	}
	// Bob's delivered receipt went sealed too: everything queued for
	// alice is sealed.
	for _, env := range queued(t, r, alice.AccountID(), 1) {
		checkSealed(t, env, bob.AccountID())
	}
	alice.run(t)
	m := nextMessage(t, alice.rec, "hi alice")
	if !bytes.Equal(m.From, bob.AccountID()) || m.FromDevice != 1 || !bytes.Equal(m.ID, res.ID) {
		t.Fatalf("alice got %+v", m)
	}
	// A retried sealed send (same Content.ID) lands once.
	again, err := bob.Send(ctx, alice.AccountID(), &Content{Text: "hi alice", ID: res.ID})
	if err != nil || !again.Sealed || !again.Duplicate {
		t.Fatalf("retry: %+v, %v; want a sealed duplicate", again, err)
	}
}

// TestSealedFallbacks: a key the relay refuses is dropped and the send
// goes identified; a message too large for a sealed request goes
// identified, the key kept; a relay without sealed sends gets
// identified ones.
func TestSealedFallbacks(t *testing.T) {
	r := newRelay(t)
	alice, bob := register(t, r), register(t, r)
	ctx := ctxT(t)
	if _, err := alice.Send(ctx, bob.AccountID(), &Content{Text: "key for bob"}); err != nil {
		t.Fatal(err)
	}
	bob.run(t)
	nextMessage(t, bob.rec, "key for bob")
	waitQueued(t, r, alice.AccountID(), 1, 1) // bob's delivered receipt

	big := strings.Repeat("x", 20000)
	res, err := bob.Send(ctx, alice.AccountID(), &Content{Text: big})
	if err != nil || res.Sealed || res.IdentifiedReason != ReasonTooLarge {
		t.Fatalf("large send: %+v, %v; want identified, too large", res, err)
	}
	if _, err := os.Stat(keyFile(bob.dir, alice.AccountID())); err != nil {
		t.Fatalf("the key was dropped for a large message: %v", err)
	}
	checkIdentified(t, last(t, queued(t, r, alice.AccountID(), 1)), bob.AccountID())
	// The messenger knew before trying: the relay refused no frame.
	if n := requestsCounted(t, r, "code", "FRAME_TOO_LARGE"); n != 0 {
		t.Fatalf("the relay refused %v frames as too large", n)
	}

	if err := os.WriteFile(keyFile(bob.dir, alice.AccountID()), []byte("0123456789abcdef"), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err = bob.Send(ctx, alice.AccountID(), &Content{Text: "rotated?"})
	if err != nil || res.Sealed || res.IdentifiedReason != ReasonKeyRefused {
		t.Fatalf("refused key: %+v, %v", res, err)
	}
	if _, err := os.Stat(keyFile(bob.dir, alice.AccountID())); !os.IsNotExist(err) {
		t.Fatalf("the refused key is still there: %v", err)
	}
	checkIdentified(t, last(t, queued(t, r, alice.AccountID(), 1)), bob.AccountID())
	res, err = bob.Send(ctx, alice.AccountID(), &Content{Text: "after"})
	if err != nil || res.Sealed || res.IdentifiedReason != ReasonNoAccessKey {
		t.Fatalf("after the refusal: %+v, %v", res, err)
	}
	alice.run(t)
	nextMessage(t, alice.rec, big)
	nextMessage(t, alice.rec, "rotated?")
	nextMessage(t, alice.rec, "after")

	// A relay without sender certificate keys.
	plain, err := startRelay(t.TempDir(), "127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { plain.stop() })
	carol, dave := register(t, plain), register(t, plain)
	if err := carol.LearnAccessKey(dave.AccountID(), bytes.Repeat([]byte{7}, spec.AccessKeySize)); err != nil {
		t.Fatal(err)
	}
	res, err = carol.Send(ctx, dave.AccountID(), &Content{Text: "no sealed here"})
	if err != nil || res.Sealed || res.IdentifiedReason != ReasonUnsupported {
		t.Fatalf("relay without sealed sends: %+v, %v", res, err)
	}
	dave.run(t)
	nextMessage(t, dave.rec, "no sealed here")
}

// TestSealedLinkedDevice: a send to an account that linked a device is
// stale; the retry goes sealed to both devices. The linked device,
// which has no access key of its own, learns the account's from the
// copy of what the first device sent, and then sends sealed itself.
func TestSealedLinkedDevice(t *testing.T) {
	r := newRelay(t)
	alice, bob := register(t, r), register(t, r)
	ctx := ctxT(t)
	alice.run(t)
	bob.run(t)
	if _, err := bob.Send(ctx, alice.AccountID(), &Content{Text: "bob's key"}); err != nil {
		t.Fatal(err)
	}
	nextMessage(t, alice.rec, "bob's key")
	laptop := link(t, r, bob)
	laptop.run(t)
	if _, err := os.Stat(filepath.Join(laptop.dir, "access-key")); !os.IsNotExist(err) {
		t.Fatalf("a linked device has an access key before any message: %v", err)
	}
	res, err := alice.Send(ctx, bob.AccountID(), &Content{Text: "to both"})
	if err != nil || !res.Sealed || res.Devices != 2 {
		t.Fatalf("send after the link: %+v, %v; want sealed to 2 devices", res, err)
	}
	nextMessage(t, laptop.rec, "to both")
	if _, err := bob.Send(ctx, alice.AccountID(), &Content{Text: "from the phone"}); err != nil {
		t.Fatal(err)
	}
	nextMessage(t, laptop.rec, "from the phone") // the copy
	phoneKey, _ := os.ReadFile(filepath.Join(bob.dir, "access-key"))
	got, err := os.ReadFile(filepath.Join(laptop.dir, "access-key"))
	if err != nil || !bytes.Equal(got, phoneKey) || len(got) != spec.AccessKeySize {
		t.Fatalf("the laptop's access key %x (%v), want the phone's %x", got, err, phoneKey)
	}
	// A message from its own account never replaces a key it holds.
	if err := laptop.LearnAccessKey(bob.AccountID(), bytes.Repeat([]byte{1}, spec.AccessKeySize)); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(laptop.dir, "access-key")); !bytes.Equal(got, phoneKey) {
		t.Fatal("the own access key was replaced")
	}
	res, err = laptop.Send(ctx, alice.AccountID(), &Content{Text: "from the laptop"})
	if err != nil || !res.Sealed {
		t.Fatalf("laptop's send: %+v, %v; want sealed", res, err)
	}
	m := nextMessage(t, alice.rec, "from the laptop")
	if !bytes.Equal(m.From, bob.AccountID()) || m.FromDevice != laptop.DeviceID() {
		t.Fatalf("alice got %+v", m)
	}
}

// TestSealedGroupSend: a group message goes sealed, one sealed send per
// member account whose key the sender holds, identified to the rest;
// a refused key sends that account identified.
func TestSealedGroupSend(t *testing.T) {
	r := newRelay(t)
	alice, bob, carol, dave := register(t, r), register(t, r), register(t, r), register(t, r)
	ctx := ctxT(t)
	alice.run(t)
	for _, d := range []*device{bob, carol} {
		if _, err := d.Send(ctx, alice.AccountID(), &Content{Text: "my key"}); err != nil {
			t.Fatal(err)
		}
		nextMessage(t, alice.rec, "my key")
	}
	for _, d := range []*device{bob, carol} {
		waitQueued(t, r, d.AccountID(), 1, 1) // alice's delivered receipt
	}
	members := append(append(append([]byte(nil), bob.AccountID()...), carol.AccountID()...), dave.AccountID()...)
	gid, err := alice.CreateGroup(ctx, "club", members)
	if err != nil {
		t.Fatal(err)
	}
	res, err := alice.SendGroup(ctx, gid, &Content{Text: "hello club"})
	if err != nil {
		t.Fatal(err)
	}
	if res.SealedAccounts != 2 || res.IdentifiedAccounts != 1 || res.IdentifiedReason != ReasonNoAccessKey || res.Devices != 3 {
		t.Fatalf("group send: %+v", res)
	}
	checkSealed(t, last(t, queued(t, r, bob.AccountID(), 1)), alice.AccountID())
	checkSealed(t, last(t, queued(t, r, carol.AccountID(), 1)), alice.AccountID())
	checkIdentified(t, last(t, queued(t, r, dave.AccountID(), 1)), alice.AccountID())

	if err := os.WriteFile(keyFile(alice.dir, carol.AccountID()), []byte("0123456789abcdef"), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err = alice.SendGroup(ctx, gid, &Content{Text: "carol rotated"})
	if err != nil {
		t.Fatal(err)
	}
	if res.SealedAccounts != 1 || res.IdentifiedAccounts != 2 || res.IdentifiedReason != ReasonKeyRefused+"; "+ReasonNoAccessKey {
		t.Fatalf("group send with a refused key: %+v", res)
	}
	checkSealed(t, last(t, queued(t, r, bob.AccountID(), 1)), alice.AccountID())
	checkIdentified(t, last(t, queued(t, r, carol.AccountID(), 1)), alice.AccountID())
	for _, d := range []*device{bob, carol, dave} {
		d.run(t)
		m := nextMessage(t, d.rec, "hello club")
		if !bytes.Equal(m.From, alice.AccountID()) || !bytes.Equal(m.GroupID, gid) {
			t.Fatalf("member got %+v", m)
		}
		nextMessage(t, d.rec, "carol rotated")
	}
}

// requestsCounted is the relay's count of requests whose label is value.
func requestsCounted(t *testing.T, r *testRelay, label, value string) float64 {
	t.Helper()
	mfs, err := r.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "pigeonhole_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}

// TestSenderCertificate: the certificate is fetched once and reused
// until an hour before it expires; a sealed message whose certificate
// is signed by a server key not pinned yet (the relay rotated) is
// opened after one refresh of the pinned keys, and a pinned key id
// keeps its key.
func TestSenderCertificate(t *testing.T) {
	dir := t.TempDir()
	r, err := startTestRelay(dir, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			r.stop()
		}
	})
	alice, bob := register(t, r), register(t, r)
	ctx := ctxT(t)
	send := func(from, to *device, text string) {
		t.Helper()
		res, err := from.Send(ctx, to.AccountID(), &Content{Text: text})
		if err != nil {
			t.Fatal(err)
		}
		if text != "key" && !res.Sealed {
			t.Fatalf("%q went identified: %s", text, res.IdentifiedReason)
		}
	}
	send(alice, bob, "key") // Bob learns Alice's key from it
	if err := bob.RunUntilDrained(ctx, bob.rec); err != nil {
		t.Fatal(err)
	}
	certs := func() float64 { return requestsCounted(t, r, "type", "sender_certificate") }
	send(bob, alice, "one")
	n := certs()
	send(bob, alice, "two")
	if certs() != n {
		t.Fatalf("a second sealed send fetched a certificate again (%v, then %v)", n, certs())
	}
	// A cached certificate with less than an hour left is replaced.
	b, _ := json.Marshal(certRecord{Raw: []byte("stale"), ExpiresMs: time.Now().Add(30 * time.Minute).UnixMilli()})
	if err := bob.store.Put(senderCertRecord, b); err != nil {
		t.Fatal(err)
	}
	send(bob, alice, "three")
	if certs() != n+1 {
		t.Fatalf("a certificate near its expiry was used: %v fetched, want %v", certs(), n+1)
	}
	alice.run(t)
	for _, text := range []string{"one", "two", "three"} {
		if m := nextMessage(t, alice.rec, text); !bytes.Equal(m.From, bob.AccountID()) {
			t.Fatalf("%q from %x", text, m.From)
		}
	}
	pinned := alice.serverKeys()
	if len(pinned) != 1 || pinned[1] == nil {
		t.Fatalf("alice pinned %v, want key 1", pinned)
	}

	// The relay rotates its certificate key; Bob's next certificate is
	// signed by key 2, which Alice has not pinned.
	if _, err := relay.RotateSenderCertKey(dir, time.Now()); err != nil {
		t.Fatal(err)
	}
	addr := r.addr
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	stopped = true
	r2, err := startTestRelay(dir, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r2.stop() })
	if err := bob.store.Delete(senderCertRecord); err != nil {
		t.Fatal(err)
	}
	send(bob, alice, "after the rotation")
	nextMessage(t, alice.rec, "after the rotation")
	if got := alice.serverKeys(); len(got) != 2 || !bytes.Equal(got[1], pinned[1]) || got[2] == nil {
		t.Fatalf("alice pinned %v after the rotation", got)
	}
	// A listed key under a pinned id does not replace the pinned one.
	if err := alice.pinServerKeys([]client.ServerKey{{ID: 1, PublicKey: make([]byte, 32)}}); err != nil {
		t.Fatal(err)
	}
	if got := alice.serverKeys(); !bytes.Equal(got[1], pinned[1]) {
		t.Fatal("a pinned server key was replaced")
	}
}
