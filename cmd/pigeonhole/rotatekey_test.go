package main

import (
	"strings"
	"syscall"
	"testing"

	"github.com/pigeonhole/pigeonhole/relay/client"
)

// certKeys fetches a sender certificate on a new session of cr and
// returns its key id and the ids of the server keys listed with it.
func certKeys(t *testing.T, opts client.Options, cr *client.Credentials) (uint32, []uint32) {
	t.Helper()
	c := sessionProc(t, opts, cr, 0)
	cert, keys, err := c.SenderCertificate(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint32
	for _, k := range keys {
		ids = append(ids, k.ID)
	}
	return cert.KeyID, ids
}

// TestRotateSenderKey: rotate-sender-key refuses while the relay runs;
// run on the stopped relay, the next start signs certificates with the
// new key and still lists the old one.
func TestRotateSenderKey(t *testing.T) {
	data := t.TempDir()
	p := startRelayProc(t, data)
	alice := registerProc(t, p.opts)
	if id, ids := certKeys(t, p.opts, alice); id != 1 || len(ids) != 1 || ids[0] != 1 {
		t.Fatalf("first start: certificate key %d, listed %v; want 1 and [1]", id, ids)
	}
	if out, err := pigeonholeCmd(t, "rotate-sender-key", "-data", data); err == nil || !strings.Contains(out, "a relay is running") {
		t.Fatalf("rotate-sender-key ran while the relay ran: %v\n%s", err, out)
	}
	if err := p.kill(t, syscall.SIGTERM); err != nil {
		t.Fatalf("relay exit: %v", err)
	}
	out, err := pigeonholeCmd(t, "rotate-sender-key", "-data", data)
	if err != nil || !strings.Contains(out, "new sender certificate key 2 ") {
		t.Fatalf("rotate-sender-key: %v\n%s", err, out)
	}
	r := startRelayProc(t, data)
	if id, ids := certKeys(t, r.opts, alice); id != 2 || len(ids) != 2 || ids[0] != 2 || ids[1] != 1 {
		t.Fatalf("after rotation: certificate key %d, listed %v; want 2 and [2 1]", id, ids)
	}
}
