package relay_test

import (
	"testing"

	"github.com/pigeonhole/pigeonhole/relay/client"
)

// TestMigrationKeepsSession moves a live client to a new local UDP socket
// (a phone going from Wi-Fi to mobile data) and checks that the same
// connection and session stream keep delivering, with no reconnect, after
// the old path is cut off entirely.
func TestMigrationKeepsSession(t *testing.T) {
	r := startRelay(t, testConfig())
	alice, bob := r.register(t, 0), r.register(t, 0)
	proxy := startUDPProxy(t, r.opts.Addr)
	opts := r.opts
	opts.Addr = proxy.addr()
	bc, err := client.Dial(ctxT(t), &opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bc.Close() })
	if _, err := bc.Authenticate(ctxT(t), bob.creds(), 8); err != nil {
		t.Fatal(err)
	}
	nextKind(t, bc, client.EventDrained)
	ac := r.session(t, alice, 0)
	if _, err := sendText(t, ac, bob, []uint32{1}, "before"); err != nil {
		t.Fatal(err)
	}
	if env := nextEnvelope(t, bc); string(env.Content) != "before" {
		t.Fatalf("got %q", env.Content)
	} else if err := bc.Ack(env.Seq); err != nil {
		t.Fatal(err)
	}
	sessions := r.metric(t, "pigeonhole_sessions")
	oldAddr := bc.LocalAddr()
	if err := bc.Migrate(ctxT(t)); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	newAddr := bc.LocalAddr()
	if newAddr == oldAddr {
		t.Fatalf("still on %s after migrating", oldAddr)
	}
	// The Wi-Fi is gone: nothing passes on the old path any more.
	proxy.block(oldAddr)
	if _, err := sendText(t, ac, bob, []uint32{1}, "after"); err != nil {
		t.Fatal(err)
	}
	env := nextEnvelope(t, bc)
	if string(env.Content) != "after" {
		t.Fatalf("got %q", env.Content)
	}
	if err := bc.Ack(env.Seq); err != nil {
		t.Fatal(err)
	}
	select {
	case <-proxy.firstPacket(newAddr):
	default:
		t.Fatal("no packet came from the new socket")
	}
	// Requests on the migrated connection work too, and no new session
	// was opened.
	if _, err := bc.PreKeyStatus(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if got := r.metric(t, "pigeonhole_sessions"); got != sessions {
		t.Fatalf("sessions %v after migration, want %v", got, sessions)
	}
}
