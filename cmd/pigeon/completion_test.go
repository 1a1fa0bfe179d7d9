package main

import (
	"bytes"
	"flag"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// TestCompletionScripts: "pigeon completion bash" names every command
// and subcommand of the command table and of the usage text, and every
// flag the commands parse; the script parses in bash and completes a
// subcommand and a flag as bash would on TAB.
func TestCompletionScripts(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"completion", "bash"}, &out, &errOut); code != 0 {
		t.Fatalf("completion bash: exit %d\n%s", code, errOut.String())
	}
	script := out.String()
	var want []string
	var walk func(table []command)
	walk = func(table []command) {
		for _, c := range table {
			want = append(want, c.name)
			if c.flags != nil {
				fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
				fs.SetOutput(io.Discard)
				c.flags(fs)
				fs.VisitAll(func(f *flag.Flag) { want = append(want, "-"+f.Name) })
			}
			walk(c.subs)
		}
	}
	walk(commands())
	// The usage text's commands too ("recv/listen", "add|remove" are two).
	for l := range strings.Lines(usage) {
		if strings.HasPrefix(l, "  ") && !strings.HasPrefix(l, "   ") {
			first := strings.Fields(l)[0]
			want = append(want, strings.FieldsFunc(first, func(r rune) bool { return r == '/' || r == '|' })...)
		}
	}
	want = append(want, "-dir")
	for _, w := range want {
		if !mentions(script, w) {
			t.Errorf("the bash script does not mention %q", w)
		}
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash here")
	}
	check := exec.Command(bash, "-n")
	check.Stdin = strings.NewReader(script)
	if msg, err := check.CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v\n%s", err, msg)
	}
	for _, c := range []struct {
		words []string
		want  string
	}{
		{[]string{"pigeon", "-dir", "x", "group", "re"}, "remove"},
		{[]string{"pigeon", "push-token", "apns", "-s"}, "-sandbox"},
		{[]string{"pigeon", "listen", "-delete"}, "-delete-limit"},
	} {
		cmd := exec.Command(bash, "--norc", "-c", `eval "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _pigeon; echo "${COMPREPLY[*]}"`, "bash", script)
		cmd.Args = append(cmd.Args, c.words...)
		got, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(got)) != c.want {
			t.Errorf("%q completes to %q (%v), want %q", c.words, got, err, c.want)
		}
	}
	for _, sh := range []string{"zsh", "fish"} {
		out.Reset()
		if code := run([]string{"completion", sh}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "push-token") {
			t.Errorf("completion %s: exit %d", sh, code)
		}
	}
	if code := run([]string{"completion", "tcsh"}, io.Discard, io.Discard); code != 2 {
		t.Errorf("completion tcsh: exit %d, want 2", code)
	}
}

// mentions reports whether script has w as a word of a quoted list.
func mentions(script, w string) bool {
	for _, pre := range []string{" ", "'"} {
		for _, post := range []string{" ", "'"} {
			if strings.Contains(script, pre+w+post) {
				return true
			}
		}
	}
	return false
}
