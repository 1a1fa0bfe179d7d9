package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCompletionScripts: "pigeonhole completion bash" names every
// command, subcommand and flag of the command table, and parses in bash;
// every shell gets a script, and an unknown one is a usage error.
func TestCompletionScripts(t *testing.T) {
	out, errOut, err := pigeonholeOut(t, "completion", "bash")
	if err != nil {
		t.Fatalf("completion bash: %v\n%s", err, errOut)
	}
	var want []string
	var walk func(table []command)
	walk = func(table []command) {
		for _, c := range table {
			want = append(want, c.name)
			if c.flags != nil {
				fs := c.flags()
				for _, f := range flagNames(fs) {
					want = append(want, "-"+f)
				}
			}
			walk(c.subs)
		}
	}
	walk(commands())
	for _, w := range want {
		if !mentions(out, w) {
			t.Errorf("the bash script does not mention %q", w)
		}
	}
	if bash, err := exec.LookPath("bash"); err == nil {
		cmd := exec.Command(bash, "-n")
		cmd.Stdin = strings.NewReader(out)
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("bash -n: %v\n%s", err, msg)
		}
	}
	for _, sh := range []string{"zsh", "fish"} {
		if out, errOut, err := pigeonholeOut(t, "completion", sh); err != nil || !strings.Contains(out, "accounts") {
			t.Errorf("completion %s: %v\n%s", sh, err, errOut)
		}
	}
	if _, _, err := pigeonholeOut(t, "completion", "tcsh"); exitCode(err) != 2 {
		t.Errorf("completion tcsh: exit %d, want 2", exitCode(err))
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
