package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// exampleConfig is the commented example config file operators copy.
const exampleConfig = "pigeonhole.conf.example"

var update = flag.Bool("update", false, "rewrite "+exampleConfig+" from serve's flags")

// renderExample writes the example config: every serve flag, with its
// help text as a comment and its default as a commented-out setting.
func renderExample(fs *flag.FlagSet) []byte {
	var b bytes.Buffer
	b.WriteString(`# Example configuration for "pigeonhole serve -config FILE".
#
# One "name = value" per line; '#' starts a comment. Every setting is a
# flag of "pigeonhole serve" (see "pigeonhole serve -h") and can also be
# set with an environment variable PIGEONHOLE_<NAME> (upper case, '-' as
# '_'). Precedence: command-line flags, then environment, then this file,
# then the defaults shown here. Every line below is commented out, so the
# file as it is changes nothing: uncomment what you change.
#
# This file is generated from the flags and checked by a test
# (go test ./cmd/pigeonhole -run TestExampleConfig -update rewrites it).
`)
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "config" {
			return
		}
		name, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(&b, "\n# %s", strings.ReplaceAll(usage, "\n", "\n# "))
		if name != "" {
			fmt.Fprintf(&b, " (%s)", name)
		}
		fmt.Fprintf(&b, "\n# %s = %s\n", f.Name, f.DefValue)
	})
	return b.Bytes()
}

// TestExampleConfig: the example config names every flag of serve -h with
// its default, and, with every setting uncommented, parses and sets each
// flag to its default.
func TestExampleConfig(t *testing.T) {
	want := renderExample(serveFlagSet(&serveFlags{}))
	if *update {
		if err := os.WriteFile(exampleConfig, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s does not match serve's flags; run: go test ./cmd/pigeonhole -run TestExampleConfig -update", exampleConfig)
	}
	// Uncomment every setting and apply it.
	var lines []string
	for l := range strings.Lines(string(got)) {
		if s, ok := strings.CutPrefix(l, "# "); ok && strings.Contains(s, " = ") && !strings.Contains(s, `"`) {
			l = s
		}
		lines = append(lines, l)
	}
	file := filepath.Join(t.TempDir(), "relay.conf")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	vals, err := readConfigFile(file)
	if err != nil {
		t.Fatal(err)
	}
	fs := serveFlagSet(&serveFlags{})
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name != "config" {
			n++
			if _, ok := vals[f.Name]; !ok {
				t.Errorf("setting %s missing from %s", f.Name, exampleConfig)
			}
		}
	})
	if len(vals) != n {
		t.Errorf("%s has %d settings, serve has %d flags", exampleConfig, len(vals), n)
	}
	if err := applyConfig(fs, file); err != nil {
		t.Fatalf("the uncommented example does not apply: %v", err)
	}
	fs.VisitAll(func(f *flag.Flag) {
		if f.Value.String() != f.DefValue {
			t.Errorf("%s = %q after applying the example, default %q", f.Name, f.Value.String(), f.DefValue)
		}
	})
}
