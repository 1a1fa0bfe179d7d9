package relay_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/pigeonhole/pigeonhole/queue"
	"github.com/pigeonhole/pigeonhole/relay"
	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/relaytest"
	"github.com/pigeonhole/pigeonhole/spec"
)

// link adds a device to primary's account through the relay the way a new
// device does it: provisioning stream, code, forwarded message, link.
func (r *testRelay) link(t testing.TB, primary *device, pc *client.Conn) *device {
	t.Helper()
	nc := r.dial(t)
	prov, err := nc.OpenProvisioning(ctxT(t))
	if err != nil {
		t.Fatalf("open provisioning: %v", err)
	}
	code, _, err := pc.CreateLinkCode(ctxT(t))
	if err != nil {
		t.Fatalf("create link code: %v", err)
	}
	// The body is opaque to the relay; here it carries the code.
	if err := pc.Provision(ctxT(t), prov.Address, code); err != nil {
		t.Fatalf("provision: %v", err)
	}
	got, err := prov.Wait(ctxT(t))
	if err != nil || !bytes.Equal(got, code) {
		t.Fatalf("wait = %x, %v", got, err)
	}
	reg, err := relaytest.NewLinkedRegistration(primary.identity, 5)
	if err != nil {
		t.Fatal(err)
	}
	acct, err := nc.LinkDevice(ctxT(t), primary.AccountID, got, reg, []byte("sealed name"))
	if err != nil {
		t.Fatalf("link device: %v", err)
	}
	nc.Close()
	return &device{Account: *acct, auth: reg.AuthKey, identity: primary.identity}
}

// TestLinkedDeviceGetsMail: linking tells the account's devices, makes a
// contact's old device list stale, and then every send reaches both
// devices, including the sender's own sync copy.
func TestLinkedDeviceGetsMail(t *testing.T) {
	r := startRelay(t, testConfig())
	alice, bob := r.register(t, 5), r.register(t, 5)
	a1 := r.session(t, alice, 16)
	nextKind(t, a1, client.EventDrained)

	a2dev := r.link(t, alice, a1)
	if a2dev.DeviceID != 2 {
		t.Fatalf("linked device id %d", a2dev.DeviceID)
	}
	ev := nextKind(t, a1, client.EventDevices)
	if len(ev.DeviceIDs) != 2 || ev.DeviceIDs[1] != 2 {
		t.Fatalf("devices changed: %v", ev.DeviceIDs)
	}
	a2 := r.session(t, a2dev, 16)
	nextKind(t, a2, client.EventDrained)

	bc := r.session(t, bob, 0)
	_, err := sendText(t, bc, alice, []uint32{1}, "old list")
	if ce := wantCode(t, err, spec.CodeStaleDevices); len(ce.Missing) != 1 || ce.Missing[0] != 2 {
		t.Fatalf("stale: missing %v", ce.Missing)
	}
	if _, err := sendText(t, bc, alice, []uint32{1, 2}, "to both"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client.Conn{a1, a2} {
		if env := nextEnvelope(t, c); string(env.Content) != "to both" {
			t.Fatalf("got %q", env.Content)
		}
	}
	// A send to one's own account goes to one's other devices.
	if _, err := sendText(t, a1, alice, []uint32{2}, "sync copy"); err != nil {
		t.Fatal(err)
	}
	if env := nextEnvelope(t, a2); string(env.Content) != "sync copy" || env.SenderDevice != 1 {
		t.Fatalf("sync copy %q from device %d", env.Content, env.SenderDevice)
	}

	infos, err := a2.ListDevices(ctxT(t))
	if err != nil || len(infos) != 2 {
		t.Fatalf("list = %v, %v", infos, err)
	}
	// Days, not times: midnight UTC of today (or of yesterday, if the
	// test ran across midnight).
	today := time.Now().UTC().Truncate(24 * time.Hour)
	isDay := func(d time.Time) bool { return d.Equal(today) || d.Equal(today.Add(-24*time.Hour)) }
	if string(infos[1].EncryptedName) != "sealed name" || !isDay(infos[1].Linked) || !isDay(infos[1].LastSeen) {
		t.Fatalf("device 2 info %+v", infos[1])
	}
}

func TestLinkCodeRefusals(t *testing.T) {
	cfg := testConfig()
	r := startRelay(t, cfg)
	alice, carol := r.register(t, 1), r.register(t, 1)
	a1 := r.session(t, alice, 0)
	c1 := r.session(t, carol, 0)
	nc := r.dial(t)
	reg, err := relaytest.NewLinkedRegistration(alice.identity, 1)
	if err != nil {
		t.Fatal(err)
	}
	carolCode, _, err := c1.CreateLinkCode(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	_, err = nc.LinkDevice(ctxT(t), alice.AccountID, carolCode, reg, nil)
	wantCode(t, err, spec.CodeBadLinkCode)
	_, err = nc.LinkDevice(ctxT(t), alice.AccountID, make([]byte, 16), reg, nil)
	wantCode(t, err, spec.CodeBadLinkCode)

	code, _, err := a1.CreateLinkCode(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	// Carol's identity with Alice's code.
	wrong, err := relaytest.NewLinkedRegistration(carol.identity, 1)
	if err != nil {
		t.Fatal(err)
	}
	_, err = nc.LinkDevice(ctxT(t), alice.AccountID, code, wrong, nil)
	wantCode(t, err, spec.CodeInvalidKey)
	if _, err := nc.LinkDevice(ctxT(t), alice.AccountID, code, reg, nil); err != nil {
		t.Fatal(err)
	}
	reg2, _ := relaytest.NewLinkedRegistration(alice.identity, 1)
	_, err = nc.LinkDevice(ctxT(t), alice.AccountID, code, reg2, nil)
	wantCode(t, err, spec.CodeBadLinkCode) // reused

	// Only the primary makes codes.
	a2 := r.session(t, &device{Account: client.Account{AccountID: alice.AccountID, DeviceID: 2}, auth: reg.AuthKey}, 0)
	_, _, err = a2.CreateLinkCode(ctxT(t))
	wantCode(t, err, spec.CodeNotPrimary)

	// Expired codes.
	cfg.LinkCodeLifetime = time.Nanosecond
	r2 := startRelay(t, cfg)
	dave := r2.register(t, 1)
	d1 := r2.session(t, dave, 0)
	code, _, err = d1.CreateLinkCode(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	dreg, _ := relaytest.NewLinkedRegistration(dave.identity, 1)
	_, err = r2.dial(t).LinkDevice(ctxT(t), dave.AccountID, code, dreg, nil)
	wantCode(t, err, spec.CodeBadLinkCode)
}

func TestTooManyDevices(t *testing.T) {
	r := startRelay(t, testConfig())
	alice := r.register(t, 1)
	a1 := r.session(t, alice, 0)
	for range 5 {
		r.link(t, alice, a1)
	}
	nc := r.dial(t)
	prov, err := nc.OpenProvisioning(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	defer prov.Close()
	code, _, err := a1.CreateLinkCode(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	reg, _ := relaytest.NewLinkedRegistration(alice.identity, 1)
	_, err = nc.LinkDevice(ctxT(t), alice.AccountID, code, reg, nil)
	wantCode(t, err, spec.CodeTooManyDevices)
}

func TestProvisioningRefusals(t *testing.T) {
	cfg := testConfig()
	cfg.ProvisioningLifetime = 300 * time.Millisecond
	r := startRelay(t, cfg)
	alice := r.register(t, 1)
	a1 := r.session(t, alice, 0)
	nc := r.dial(t)
	prov, err := nc.OpenProvisioning(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, a1.Provision(ctxT(t), prov.Address, make([]byte, relay.MaxProvisioningBytes+1)), spec.CodeEnvelopeTooLarge)
	wantCode(t, a1.Provision(ctxT(t), make([]byte, 16), []byte("x")), spec.CodeUnknownAddress)
	wantCode(t, a1.Provision(ctxT(t), prov.Address[:8], []byte("x")), spec.CodeBadRequest)
	wantCode(t, nc.Provision(ctxT(t), prov.Address, []byte("x")), spec.CodeUnauthenticated)
	if err := a1.Provision(ctxT(t), prov.Address, []byte("first")); err != nil {
		t.Fatal(err)
	}
	// An address takes one message.
	wantCode(t, a1.Provision(ctxT(t), prov.Address, []byte("second")), spec.CodeUnknownAddress)
	if got, err := prov.Wait(ctxT(t)); err != nil || string(got) != "first" {
		t.Fatalf("wait = %q, %v", got, err)
	}
	// One provisioning stream per connection.
	busy, err := nc.OpenProvisioning(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	_, err = nc.OpenProvisioning(ctxT(t))
	wantCode(t, err, spec.CodeRateLimited)
	busy.Close()
	// An address dies with its stream, and when it expires.
	closed, err := r.dial(t).OpenProvisioning(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	expiring, err := r.dial(t).OpenProvisioning(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	_, err = expiring.Wait(ctxT(t))
	wantCode(t, err, spec.CodeUnknownAddress)
	wantCode(t, a1.Provision(ctxT(t), expiring.Address, []byte("late")), spec.CodeUnknownAddress)
	wantCode(t, a1.Provision(ctxT(t), closed.Address, []byte("gone")), spec.CodeUnknownAddress)
}

// TestRevokeDevice: revocation closes the device's connection with the
// device-removed code, deletes its queue, and it cannot come back.
func TestRevokeDevice(t *testing.T) {
	r := startRelay(t, testConfig())
	alice, bob := r.register(t, 5), r.register(t, 5)
	a1 := r.session(t, alice, 0)
	a2dev := r.link(t, alice, a1)
	bc := r.session(t, bob, 0)
	if _, err := sendText(t, bc, alice, []uint32{1, 2}, "queued"); err != nil {
		t.Fatal(err)
	}
	a2 := r.session(t, a2dev, 0)
	wantCode(t, a2.RevokeDevice(ctxT(t), 1), spec.CodeNotPrimary)
	wantCode(t, a1.RevokeDevice(ctxT(t), 1), spec.CodeNotPrimary)
	wantCode(t, a1.RevokeDevice(ctxT(t), 9), spec.CodeUnknownDevice)
	if err := a1.RevokeDevice(ctxT(t), 2); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a2.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the revoked device's connection stayed open")
	}
	if !a2.Revoked() || !isAppError(a2.Err(), quic.ApplicationErrorCode(spec.CloseDeviceRemoved)) {
		t.Errorf("closed with %v, want device removed", a2.Err())
	}
	c := r.dial(t)
	_, err := c.Authenticate(ctxT(t), a2dev.creds(), 16)
	wantCode(t, err, spec.CodeUnknownDevice)
	if n, _, err := r.queues.Depth(queue.Address{Account: [16]byte(alice.AccountID), Device: 2}); err != nil || n != 0 {
		t.Errorf("revoked device's queue depth %d, %v", n, err)
	}
	_, err = sendText(t, bc, alice, []uint32{1, 2}, "after")
	wantCode(t, err, spec.CodeStaleDevices)
	// Its prekeys are gone (bundles only for device 1), and the primary
	// was told both changes.
	ks, err := bc.FetchKeys(ctxT(t), alice.AccountID)
	if err != nil || len(ks.Devices) != 1 || ks.Devices[0].DeviceID != 1 {
		t.Fatalf("bundles after revoke: %+v, %v", ks, err)
	}
	if ev := nextKind(t, a1, client.EventDevices); len(ev.DeviceIDs) != 2 {
		t.Fatalf("link event %v", ev.DeviceIDs)
	}
	if ev := nextKind(t, a1, client.EventDevices); len(ev.DeviceIDs) != 1 || ev.DeviceIDs[0] != 1 {
		t.Fatalf("revoke event %v", ev.DeviceIDs)
	}
}
