package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/pigeonhole/pigeonhole/relay/client"
)

// pigeonholeCmd runs this test binary as the pigeonhole command.
func pigeonholeCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "PIGEONHOLE_TEST_AS_MAIN=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// TestBackupRoundTrip: a backup made while the relay runs (through its
// admin socket) restores to a relay with the same certificate, the same
// accounts and the message that was queued at the time; a backup of a
// stopped relay works too; an existing destination is refused.
func TestBackupRoundTrip(t *testing.T) {
	data := t.TempDir()
	p := startRelayProc(t, data)
	alice, bob := registerProc(t, p.opts), registerProc(t, p.opts)
	ac := sessionProc(t, p.opts, alice, 0)
	if _, err := ac.Send(testCtx(t), textTo(bob, msgID(), "kept in the backup")); err != nil {
		t.Fatal(err)
	}
	live := filepath.Join(t.TempDir(), "live")
	if out, err := pigeonholeCmd(t, "backup", "-data", data, live); err != nil || !bytes.Contains([]byte(out), []byte("made by the running relay")) {
		t.Fatalf("backup of the running relay: %v\n%s", err, out)
	}
	if out, err := pigeonholeCmd(t, "backup", "-data", data, live); err == nil {
		t.Fatalf("a backup over an existing directory was made:\n%s", out)
	}
	// After the backup: a message the backup must not have.
	if _, err := ac.Send(testCtx(t), textTo(bob, msgID(), "after the backup")); err != nil {
		t.Fatal(err)
	}
	if err := p.kill(t, syscall.SIGTERM); err != nil {
		t.Fatalf("relay exit: %v", err)
	}
	cold := filepath.Join(t.TempDir(), "cold")
	if out, err := pigeonholeCmd(t, "backup", "-data", data, cold); err != nil || !bytes.Contains([]byte(out), []byte("not running")) {
		t.Fatalf("backup of the stopped relay: %v\n%s", err, out)
	}

	// Restore: a relay on the live backup.
	r := startRelayProc(t, live)
	if r.opts.Fingerprint != p.opts.Fingerprint {
		t.Fatalf("restored relay has certificate %s, was %s", r.opts.Fingerprint, p.opts.Fingerprint)
	}
	bc := sessionProc(t, r.opts, bob, 16)
	var ev *client.Event
	for ev == nil || ev.Kind != client.EventEnvelope {
		var err error
		if ev, err = bc.Next(testCtx(t)); err != nil || ev.Kind == client.EventDrained {
			t.Fatalf("bob on the restored relay: %+v %v", ev, err)
		}
	}
	if got := string(ev.Envelope.Content); got != "kept in the backup" {
		t.Fatalf("bob got %q", got)
	}
	// Nothing after the backup point: the backlog ends here.
	for {
		ev, err := bc.Next(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if ev.Kind == client.EventDrained {
			break
		}
		if ev.Kind == client.EventEnvelope {
			t.Fatalf("the restored relay has a message from after the backup: %q", ev.Envelope.Content)
		}
	}
}
