package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/spec"
)

// pigeonholeOut runs this test binary as the pigeonhole command and
// returns its stdout and stderr apart.
func pigeonholeOut(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "PIGEONHOLE_TEST_AS_MAIN=1")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// listAccountsCmd runs "pigeonhole accounts list -json" and returns the
// account ids it lists.
func listAccountsCmd(t *testing.T, data string) map[string]accountRow {
	t.Helper()
	out, errOut, err := pigeonholeOut(t, "accounts", "list", "-data", data, "-json")
	if err != nil {
		t.Fatalf("accounts list: %v\n%s", err, errOut)
	}
	rows := map[string]accountRow{}
	for l := range strings.Lines(out) {
		var r accountRow
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("accounts list line %q: %v", l, err)
		}
		rows[r.Account] = r
	}
	return rows
}

func queueStatsCmd(t *testing.T, data string) queueSummary {
	t.Helper()
	out, errOut, err := pigeonholeOut(t, "queues", "stats", "-data", data, "-json")
	if err != nil {
		t.Fatalf("queues stats: %v\n%s", err, errOut)
	}
	var sum queueSummary
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("queues stats %q: %v", out, err)
	}
	return sum
}

// TestAdminCommands runs the operator's commands against a real relay
// process, then against its stopped database: accounts list shows the
// accounts registered over QUIC; queues stats counts what waits (no
// contents); accounts delete ends the account's session, stops it
// authenticating and empties its queue; without the admin socket a
// locked database gets a clear error.
func TestAdminCommands(t *testing.T) {
	data := t.TempDir()
	p := startRelayProc(t, data)
	alice, bob, carol := registerProc(t, p.opts), registerProc(t, p.opts), registerProc(t, p.opts)
	ahex, bhex, chex := hex.EncodeToString(alice.AccountID), hex.EncodeToString(bob.AccountID), hex.EncodeToString(carol.AccountID)
	ac := sessionProc(t, p.opts, alice, 0)
	const secret = "not for the operator's eyes"
	for range 3 {
		if _, err := ac.Send(testCtx(t), textTo(bob, msgID(), secret)); err != nil {
			t.Fatal(err)
		}
	}

	rows := listAccountsCmd(t, data)
	if len(rows) != 3 || rows[ahex].Devices != 1 || rows[bhex].Devices != 1 || rows[chex].Created.IsZero() {
		t.Fatalf("accounts list: %+v", rows)
	}
	table, _, err := pigeonholeOut(t, "accounts", "list", "-data", data)
	if err != nil || !strings.HasPrefix(table, "ACCOUNT") || !strings.Contains(table, bhex) {
		t.Fatalf("accounts list (table): %v\n%s", err, table)
	}
	sum := queueStatsCmd(t, data)
	if sum.Queues != 1 || sum.Messages != 3 || sum.Bytes < 3*int64(len(secret)) ||
		len(sum.Largest) != 1 || sum.Largest[0].Account != bhex || sum.Largest[0].Device != 1 || sum.Largest[0].Messages != 3 || sum.Largest[0].Bytes != sum.Bytes {
		t.Fatalf("queues stats: %+v", sum)
	}
	text, _, err := pigeonholeOut(t, "queues", "stats", "-data", data)
	if err != nil || !strings.Contains(text, "queues 1, messages 3,") || strings.Contains(text, secret) {
		t.Fatalf("queues stats (text): %v\n%s", err, text)
	}

	// Bob is connected when the operator deletes him.
	bc := sessionProc(t, p.opts, bob, 16)
	if _, errOut, err := pigeonholeOut(t, "accounts", "delete", "-data", data, bhex); err != nil || !strings.Contains(errOut, "deleted account "+bhex+" (devices [1],") {
		t.Fatalf("accounts delete: %v\n%s", err, errOut)
	}
	select {
	case <-bc.Done():
	case <-time.After(patience):
		t.Fatal("the deleted account's connection is still open")
	}
	if !bc.Revoked() {
		t.Fatalf("the deleted account's connection closed with %v, not as removed", bc.Err())
	}
	c, err := client.Dial(testCtx(t), &p.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Authenticate(testCtx(t), bob, 16); err == nil {
		t.Fatal("a deleted account authenticated")
	}
	var ce *client.Error
	if _, err := ac.Send(testCtx(t), textTo(bob, msgID(), "too late")); !errors.As(err, &ce) || spec.Code(ce.Code) != spec.CodeUnknownAccount {
		t.Fatalf("send to a deleted account: %v", err)
	}
	if rows := listAccountsCmd(t, data); len(rows) != 2 || rows[bhex].Account != "" {
		t.Fatalf("accounts list after delete: %+v", rows)
	}
	if sum := queueStatsCmd(t, data); sum.Queues != 0 || sum.Messages != 0 {
		t.Fatalf("queues stats after delete: %+v", sum)
	}
	if _, errOut, err := pigeonholeOut(t, "accounts", "delete", "-data", data, bhex); err == nil || !strings.Contains(errOut, "no account "+bhex) {
		t.Fatalf("second delete: %v\n%s", err, errOut)
	}
	if _, _, err := pigeonholeOut(t, "accounts", "delete", "-data", data, "nothex"); exitCode(err) != 2 {
		t.Fatalf("delete of a bad id: exit %d", exitCode(err))
	}

	// A relay whose admin socket is gone: the database is locked, and the
	// command says so rather than waiting or failing obscurely.
	if err := os.Remove(filepath.Join(data, adminSocketName)); err != nil {
		t.Fatal(err)
	}
	if _, errOut, err := pigeonholeOut(t, "accounts", "list", "-data", data); err == nil || !strings.Contains(errOut, "is in use, but no relay answers") {
		t.Fatalf("accounts list with a locked database: %v\n%s", err, errOut)
	}

	// The relay stopped: the commands open the database themselves.
	if err := p.kill(t, syscall.SIGTERM); err != nil {
		t.Fatalf("relay exit: %v", err)
	}
	if _, errOut, err := pigeonholeOut(t, "accounts", "delete", "-data", data, chex); err != nil {
		t.Fatalf("accounts delete, relay stopped: %v\n%s", err, errOut)
	}
	rows = listAccountsCmd(t, data)
	if ids := slices.Collect(maps.Keys(rows)); len(ids) != 1 || ids[0] != ahex {
		t.Fatalf("accounts list, relay stopped: %v", ids)
	}
	if sum := queueStatsCmd(t, data); sum.Queues != 0 {
		t.Fatalf("queues stats, relay stopped: %+v", sum)
	}
	// And the relay starts again on what they left.
	p = startRelayProc(t, data)
	sessionProc(t, p.opts, alice, 16)
	c2, err := client.Dial(testCtx(t), &p.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, err := c2.Authenticate(testCtx(t), carol, 16); err == nil {
		t.Fatal("an account deleted offline authenticated")
	}
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}
