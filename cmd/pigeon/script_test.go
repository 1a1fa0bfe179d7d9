package main

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"pigeon": func() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs the CLI scenarios in testdata/script against a real
// relay: the pigeonhole binary, built from this module, started by each
// script.
func TestScripts(t *testing.T) {
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "pigeonhole"), "github.com/pigeonhole/pigeonhole/cmd/pigeonhole")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build pigeonhole: %v\n%s", err, out)
	}
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("PATH", bin+string(os.PathListSeparator)+env.Getenv("PATH"))
			env.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"waitrelay": waitRelay,
			"idenv":     idEnv,
		},
	})
}

// waitRelay waits (up to 30 s) for the ready file `pigeonhole serve
// -ready-file` writes once it listens, and sets $RELAY and $FINGERPRINT.
func waitRelay(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitrelay FILE")
	}
	path := ts.MkAbs(args[0])
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		b, err := os.ReadFile(path)
		if err == nil {
			var ready struct{ Addr, Fingerprint string }
			ts.Check(json.Unmarshal(b, &ready))
			ts.Setenv("RELAY", ready.Addr)
			ts.Setenv("FINGERPRINT", ready.Fingerprint)
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
