package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/rogpeppe/go-internal/testscript"
	"google.golang.org/protobuf/proto"

	"github.com/pigeonhole/pigeonhole/queue"
	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
	"github.com/pigeonhole/pigeonhole/spec"
)

// The commands here play a relay operator who turned against its users:
// they read what a stopped relay holds on disk and hand it to someone who
// should not be able to read it.

// stealQueued writes the last envelope queued for a device, as the
// relay stores it, from a stopped relay's data directory to FILE.
//
//	stealqueued DATA ACCOUNT DEVICE FILE
func stealQueued(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 4 {
		ts.Fatalf("usage: stealqueued DATA ACCOUNT DEVICE FILE")
	}
	db, err := pebble.Open(filepath.Join(ts.MkAbs(args[0]), "db"), &pebble.Options{ReadOnly: true})
	ts.Check(err)
	defer db.Close()
	qs, err := queue.Open(db, queue.Config{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ts.Check(err)
	var a queue.Address
	acct, err := hex.DecodeString(args[1])
	if err != nil || len(acct) != len(a.Account) {
		ts.Fatalf("bad account %q", args[1])
	}
	copy(a.Account[:], acct)
	dev, err := strconv.ParseUint(args[2], 10, 32)
	ts.Check(err)
	a.Device = uint32(dev)
	items, err := qs.Read(context.Background(), a, 0, 1000, 64<<20)
	ts.Check(err)
	if len(items) == 0 {
		ts.Fatalf("nothing queued for %s device %d", args[1][:8], dev)
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[3]), items[len(items)-1].Body, 0o600))
}

// groupDecrypt tries to decrypt a stolen group envelope (FILE, as
// stealqueued wrote it) with the device in DIR. "! groupdecrypt" expects
// the device to lack the sender key.
//
//	groupdecrypt DIR FILE
func groupDecrypt(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: groupdecrypt DIR FILE")
	}
	b, err := os.ReadFile(ts.MkAbs(args[1]))
	ts.Check(err)
	var env spec.Envelope
	ts.Check(proto.Unmarshal(b, &env))
	if env.GetType() != e2e.TypeGroup {
		ts.Fatalf("the stolen envelope is of type %d, not a group message", env.GetType())
	}
	d, err := e2e.Open(ts.MkAbs(args[0]))
	ts.Check(err)
	_, plain, err := d.DecryptGroup(context.Background(), &client.Envelope{
		Sender: env.GetSender(), SenderDevice: env.GetSenderDevice(), Type: env.GetType(), Content: env.GetContent(),
	})
	switch {
	case neg && errors.Is(err, e2e.ErrNoSenderKey):
		ts.Logf("%s cannot decrypt it: %v", args[0], err)
	case neg && err == nil:
		ts.Fatalf("%s decrypted the stolen group message", args[0])
	case neg:
		ts.Fatalf("%s failed for another reason than a missing sender key: %v", args[0], err)
	case err != nil:
		ts.Fatalf("%s cannot decrypt it: %v", args[0], err)
	default:
		var c spec.Content
		ts.Check(proto.Unmarshal(plain, &c))
		ts.Logf("%s decrypts it: %q", args[0], c.GetText().GetBody())
	}
}

// waitMetric waits (up to 30 s) until a series of the relay's /metrics
// has a value, such as pigeonhole_sessions 1 once a listener is
// connected.
//
//	waitmetric SERIES VALUE
func waitMetric(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: waitmetric SERIES VALUE")
	}
	deadline := time.Now().Add(patience)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		v := readMetric(ts, args[0])
		if v == args[1] {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%s is %s after 30s, want %s", args[0], v, args[1])
		}
		<-tick.C
	}
}

// readMetric reads one series from the relay's /metrics at $METRICS; a
// series that is not there reads 0.
func readMetric(ts *testscript.TestScript, series string) string {
	resp, err := http.Get("http://" + ts.Getenv("METRICS") + "/metrics")
	ts.Check(err)
	defer resp.Body.Close()
	return findSeries(ts, resp.Body, series)
}

// sealedEnv checks that a stolen envelope (FILE, as stealqueued wrote it)
// is sealed and names no sender: no sender fields, type 0, and the
// sender's account id (ACCOUNT, hex) nowhere in its bytes. "! sealedenv"
// expects an identified envelope from ACCOUNT instead.
//
//	sealedenv FILE ACCOUNT
func sealedEnv(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: sealedenv FILE ACCOUNT")
	}
	b, err := os.ReadFile(ts.MkAbs(args[0]))
	ts.Check(err)
	acct, err := hex.DecodeString(args[1])
	ts.Check(err)
	var env spec.Envelope
	ts.Check(proto.Unmarshal(b, &env))
	named := bytes.Contains(b, acct)
	sealed := env.GetSealed() && len(env.GetSender()) == 0 && env.GetSenderDevice() == 0 && env.GetType() == 0 && !named
	switch {
	case neg && sealed:
		ts.Fatalf("the envelope is sealed, want one identified")
	case neg && !bytes.Equal(env.GetSender(), acct):
		ts.Fatalf("the identified envelope names sender %x, want %s", env.GetSender(), args[1])
	case !neg && !sealed:
		ts.Fatalf("the envelope is not sealed or names its sender: sealed %v, sender %x, device %d, type %d, account id in its bytes %v",
			env.GetSealed(), env.GetSender(), env.GetSenderDevice(), env.GetType(), named)
	}
	ts.Logf("sealed %v, sender %x, %d bytes", env.GetSealed(), env.GetSender(), len(b))
}
