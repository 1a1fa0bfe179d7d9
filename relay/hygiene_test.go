package relay_test

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/pigeonhole/pigeonhole/relay/client"
)

// deviceKeys returns every database key that names the device (its
// account id followed by its device id), and how many name the account's
// other devices.
func deviceKeys(t *testing.T, r *testRelay, acct []byte, dev uint32) (mine [][]byte, others int) {
	t.Helper()
	id := binary.BigEndian.AppendUint32(bytes.Clone(acct), dev)
	it, err := r.db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		switch {
		case bytes.Contains(k, id):
			mine = append(mine, bytes.Clone(k))
		case bytes.Contains(k, acct):
			others++
		}
	}
	if err := it.Error(); err != nil {
		t.Fatal(err)
	}
	return mine, others
}

// TestRevokeRemovesDeviceRecords revokes a linked device that has
// prekeys, a push token, a last-seen day, an acked message (so a
// high-water mark) and a queued one, and then walks the whole key space:
// no record of the device is left.
func TestRevokeRemovesDeviceRecords(t *testing.T) {
	r, _ := startPushRelay(t, time.Hour)
	alice, bob := r.register(t, 5), r.register(t, 5)
	a1 := r.session(t, alice, 0)
	a2dev := r.link(t, alice, a1)
	r.pushToken(t, a2dev)
	bc := r.session(t, bob, 0)
	for _, body := range []string{"acked", "queued"} {
		if _, err := sendText(t, bc, alice, []uint32{1, 2}, body); err != nil {
			t.Fatal(err)
		}
	}
	a2 := r.session(t, a2dev, 1) // window 1: only the first comes
	env := nextEnvelope(t, a2)
	if err := a2.Ack(env.Seq); err != nil {
		t.Fatal(err)
	}
	if err := a2.Finish(ctxT(t)); err != nil { // the ack is durable
		t.Fatal(err)
	}
	before, _ := deviceKeys(t, r, alice.AccountID, a2dev.DeviceID)
	kinds := map[string]bool{}
	for _, k := range before {
		kinds[string(k[:4])] = true
	}
	for _, want := range []string{"k/d/", "k/p/", "k/s/", "q/m/", "q/h/", "p/"} {
		found := false
		for k := range kinds {
			found = found || k[:len(want)] == want
		}
		if !found {
			t.Fatalf("before the revoke, no %s record of the device (setup is wrong): %q", want, before)
		}
	}
	if err := a1.RevokeDevice(ctxT(t), a2dev.DeviceID); err != nil {
		t.Fatal(err)
	}
	after, others := deviceKeys(t, r, alice.AccountID, a2dev.DeviceID)
	if len(after) > 0 {
		t.Errorf("records of the revoked device are left: %q", after)
	}
	if others == 0 {
		t.Error("the primary device's records are gone too")
	}
	if _, err := r.dial(t).Authenticate(ctxT(t), a2dev.creds(), 1); client.ErrorCode(err) == 0 {
		t.Error("the revoked device can still authenticate")
	}
}
