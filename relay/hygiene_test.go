package relay_test

import (
	"bytes"
	"encoding/binary"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pigeonhole/pigeonhole/queue"
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

// filesHolding returns the files under dir whose bytes contain b.
func filesHolding(t *testing.T, dir string, b []byte) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(data, b) {
			found = append(found, strings.TrimPrefix(path, dir))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// TestAckedMessageLeavesNoTrace sends a message, flushes it to an sstable
// (as a full memtable would), acks it, runs the periodic scrub (as Run
// does every -scrub-interval) and then reads every file of the data
// directory: the ciphertext, the client message id, the dedup key (with
// the sender's account id) and the message's key (with the recipient's)
// are in none of them. The one exception is Pebble's MANIFEST, which
// records the first and last key of every sstable it ever made until it
// is rotated: it may name the message's key (never a value), as the
// README says.
func TestAckedMessageLeavesNoTrace(t *testing.T) {
	dir := t.TempDir()
	r := startRelayIn(t, testConfig(), queue.Config{}, dir, "127.0.0.1:0")
	alice, bob := r.register(t, 5), r.register(t, 5)
	ac := r.session(t, alice, 0)
	// Random bytes, which no block compression shortens.
	marker := append(randomID(t), randomID(t)...)
	msgID := randomID(t)
	m := &client.Message{Recipient: bob.AccountID, ClientMessageID: msgID,
		Devices: []client.DeviceMessage{{DeviceID: 1, Type: 2, Content: marker}}}
	if _, err := ac.Send(ctxT(t), m); err != nil {
		t.Fatal(err)
	}
	// Before the ack, the ciphertext is in an sstable and the WAL that
	// recorded it is obsolete.
	if err := r.db.Flush(); err != nil {
		t.Fatal(err)
	}
	bc := r.session(t, bob, 8)
	if env := nextEnvelope(t, bc); !bytes.Equal(env.Content, marker) {
		t.Fatalf("got %x", env.Content)
	} else if err := bc.Ack(env.Seq); err != nil {
		t.Fatal(err)
	}
	if err := bc.Finish(ctxT(t)); err != nil { // the ack is durable
		t.Fatal(err)
	}
	if found := filesHolding(t, dir, marker); len(found) == 0 {
		t.Fatal("the ciphertext is in no file before the scrub: this test would check nothing")
	}
	if err := r.queues.Scrub(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	// Nor does any live record hold the message id (the dedup record,
	// kept for the dedup window, holds a hash).
	it, err := r.db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		if bytes.Contains(it.Key(), msgID) || bytes.Contains(it.Value(), msgID) {
			t.Errorf("the record %q holds the client message id", it.Key())
		}
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tr := range []struct {
		what     string
		b        []byte
		manifest bool // may stay in a MANIFEST
	}{
		{"the ciphertext", marker, false},
		{"the client message id", msgID, false},
		{"the dedup key (sender's account id, device, message id)", append(binary.BigEndian.AppendUint32(bytes.Clone(alice.AccountID), alice.DeviceID), msgID...), false},
		{"the message's key (recipient's account id)", append([]byte("q/m/"), bob.AccountID...), true},
	} {
		for _, f := range filesHolding(t, dir, tr.b) {
			if !tr.manifest || !strings.HasPrefix(filepath.Base(f), "MANIFEST-") {
				t.Errorf("after the ack and the scrub, %s is still in %s", tr.what, f)
			}
		}
	}
}
