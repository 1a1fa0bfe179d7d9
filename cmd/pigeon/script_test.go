package main

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/pigeonhole/pigeonhole/push/pushtest"
	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
)

// patience bounds every wait of these tests for something that must
// happen: far above what it takes on an idle machine, because CI runs the
// whole suite with -race on two cores.
const patience = 2 * time.Minute

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"pigeon": func() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs the CLI scenarios in testdata/script against a real
// relay: the pigeonhole binary, built from this module, started by each
// script.
func TestScripts(t *testing.T) { runScripts(t, "testdata/script") }

// TestGroupCommandScripts runs the scenarios of the group commands'
// failures in testdata/groupcmds, as TestScripts does.
func TestGroupCommandScripts(t *testing.T) { runScripts(t, "testdata/groupcmds") }

// runScripts runs the scenarios in dir with the pigeonhole binary on
// the PATH.
func runScripts(t *testing.T, dir string) {
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "pigeonhole"), "github.com/pigeonhole/pigeonhole/cmd/pigeonhole")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build pigeonhole: %v\n%s", err, out)
	}
	testscript.Run(t, testscript.Params{
		Dir: dir,
		Setup: func(env *testscript.Env) error {
			env.Setenv("PATH", bin+string(os.PathListSeparator)+env.Getenv("PATH"))
			env.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
			return startAPNs(env)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"waitrelay":    waitRelay,
			"idenv":        idEnv,
			"apnspush":     apnsPush,
			"waitfile":     waitFile,
			"mkfile":       mkFile,
			"tamper":       tamperFiles,
			"metric":       metric,
			"fileenv":      fileEnv,
			"waitmetric":   waitMetric,
			"stealqueued":  stealQueued,
			"groupdecrypt": groupDecrypt,
			"waitgrep":     waitGrep,
			"jsonl":        jsonLines,
			"impostor":     impostor,
			"sealedenv":    sealedEnv,
		},
	})
}

// waitRelay waits (up to 30 s) for the ready file `pigeonhole serve
// -ready-file` writes once it listens, and sets $RELAY, $FINGERPRINT and
// (with -metrics) $METRICS.
func waitRelay(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitrelay FILE")
	}
	path := ts.MkAbs(args[0])
	deadline := time.Now().Add(patience)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		b, err := os.ReadFile(path)
		if err == nil {
			var ready struct{ Addr, Fingerprint, Metrics string }
			ts.Check(json.Unmarshal(b, &ready))
			ts.Setenv("RELAY", ready.Addr)
			ts.Setenv("FINGERPRINT", ready.Fingerprint)
			ts.Setenv("METRICS", ready.Metrics)
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("relay not ready after 30s: %v", err)
		}
		<-tick.C
	}
}

// idEnv sets an environment variable to the account id of the identity
// in a state directory.
func idEnv(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: idenv VAR DIR")
	}
	d, err := e2e.Open(ts.MkAbs(args[1]))
	ts.Check(err)
	ts.Setenv(args[0], hex.EncodeToString(d.AccountID()))
}

// startAPNs gives every script a local APNs endpoint that checks the
// relay's JWTs like Apple does: $WORK/apns.p8 is its key, $WORK/apns-ca.pem
// the certificate to trust, and $APNS_URL, $APNS_KEY_ID, $APNS_TEAM_ID the
// rest of what "pigeonhole serve" needs.
func startAPNs(env *testscript.Env) error {
	a, err := pushtest.StartAPNs()
	if err != nil {
		return err
	}
	env.Defer(a.Close)
	env.Values["apns"] = a
	if err := os.WriteFile(filepath.Join(env.WorkDir, "apns.p8"), a.AuthKey, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(env.WorkDir, "apns-ca.pem"), a.CertPEM, 0o644); err != nil {
		return err
	}
	env.Setenv("APNS_URL", a.URL)
	env.Setenv("APNS_KEY_ID", a.KeyID)
	env.Setenv("APNS_TEAM_ID", a.TeamID)
	return nil
}

// apnsPush waits (up to patience) for the next push the local APNs endpoint
// receives and checks it went to the device token TOKEN and was accepted.
func apnsPush(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: apnspush TOKEN")
	}
	a := ts.Value("apns").(*pushtest.APNs)
	req, err := a.NextWithin(patience)
	ts.Check(err)
	if req.Token != args[0] || req.Status != 200 {
		ts.Fatalf("push to %s answered %d %s, want an accepted push to %s", req.Token, req.Status, req.Reason, args[0])
	}
	ts.Logf("push to %s…: %s", req.Token[:8], req.Body)
}

// waitFile waits (up to 30 s) until FILE exists and is not empty, for a
// background command's output.
func waitFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitfile FILE")
	}
	path := ts.MkAbs(args[0])
	deadline := time.Now().Add(patience)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if st, err := os.Stat(path); err == nil && st.Size() > 0 {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%s did not appear within %v", args[0], patience)
		}
		<-tick.C
	}
}

// mkFile writes SIZE deterministic pseudo-random bytes to PATH.
func mkFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: mkfile PATH SIZE")
	}
	size, err := strconv.ParseInt(args[1], 10, 64)
	ts.Check(err)
	f, err := os.Create(ts.MkAbs(args[0]))
	ts.Check(err)
	w := bufio.NewWriter(f)
	x := uint64(0x9e3779b97f4a7c15)
	for i := int64(0); i < size; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		ts.Check(w.WriteByte(byte(x)))
	}
	ts.Check(w.Flush())
	ts.Check(f.Close())
}

// tamperFiles flips one byte in the middle of every regular file under
// DIR (the relay's stored blobs), as an attacker with the disk could.
func tamperFiles(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: tamper DIR")
	}
	n := 0
	err := filepath.WalkDir(ts.MkAbs(args[0]), func(p string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil || len(b) == 0 {
			return err
		}
		b[len(b)/2] ^= 0x01
		n++
		return os.WriteFile(p, b, 0o600)
	})
	ts.Check(err)
	if n == 0 {
		ts.Fatalf("no file to tamper with under %s", args[0])
	}
}

// metric checks one series of the relay's /metrics at $METRICS (a series
// that is not there reads 0): "metric SERIES VALUE" checks its value;
// "metric -set VAR SERIES" puts it in $VAR.
func metric(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 && !(len(args) == 3 && args[0] == "-set") {
		ts.Fatalf("usage: metric SERIES VALUE | metric -set VAR SERIES")
	}
	if args[0] == "-set" {
		ts.Setenv(args[1], readMetric(ts, args[2]))
		return
	}
	if v := readMetric(ts, args[0]); v != args[1] {
		ts.Fatalf("%s = %s, want %s", args[0], v, args[1])
	}
	ts.Logf("%s = %s", args[0], args[1])
}

// findSeries returns the value of series in a Prometheus text exposition.
func findSeries(ts *testscript.TestScript, r io.Reader, series string) string {
	value := "0"
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if ok && name == series {
			value = v
		}
	}
	ts.Check(sc.Err())
	return value
}

// fileEnv sets an environment variable to the trimmed contents of a file
// (such as the id "pigeon send" printed, saved with "cp stdout FILE").
func fileEnv(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: fileenv VAR FILE")
	}
	ts.Setenv(args[0], strings.TrimSpace(ts.ReadFile(args[1])))
}

// waitGrep waits until FILE (written by a command running in the
// background) has a line matching REGEXP.
//
//	waitgrep FILE REGEXP
func waitGrep(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: waitgrep FILE REGEXP")
	}
	re, err := regexp.Compile("(?m)" + args[1])
	ts.Check(err)
	path := ts.MkAbs(args[0])
	deadline := time.Now().Add(patience)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if b, err := os.ReadFile(path); err == nil && re.Match(b) {
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(path)
			ts.Fatalf("no line of %s matched %q within %v; it holds:\n%s", args[0], args[1], patience, b)
		}
		<-tick.C
	}
}
