package completion

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func testProgram() Command {
	serve := flag.NewFlagSet("serve", flag.ContinueOnError)
	serve.String("data", "", "data `directory`")
	serve.String("listen", "", "address")
	serve.Bool("pprof", false, "profile")
	global := flag.NewFlagSet("prog", flag.ContinueOnError)
	global.String("dir", "", "state directory")
	return Command{Name: "prog", Flags: FlagsOf(global), Subs: []Command{
		{Name: "serve", Help: "run it", Flags: FlagsOf(serve)},
		{Name: "accounts", Help: "accounts", Subs: []Command{{Name: "list", Help: "list them"}, {Name: "delete", Help: "delete one"}}},
		{Name: "completion", Help: "print a script", Words: Shells},
	}}
}

// TestBashCompletes sources the bash script and asks it to complete
// command lines, as bash does on TAB: commands, subcommands, flags of
// the command being typed, fixed words; a flag's value is skipped.
func TestBashCompletes(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash here")
	}
	var b bytes.Buffer
	if err := Write(&b, testProgram(), "bash"); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(t.TempDir(), "prog.bash")
	if err := os.WriteFile(script, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ line, want string }{
		{"prog ", "serve accounts completion"},
		{"prog acc", "accounts"},
		{"prog -dir x acc", "accounts"},
		{"prog -dir accounts ", "serve accounts completion"},
		{"prog -", "-dir -h"},
		{"prog accounts ", "list delete"},
		{"prog accounts d", "delete"},
		{"prog serve -", "-data -listen -pprof -h"},
		{"prog serve -data accounts -l", "-listen"},
		{"prog serve -pprof -da", "-data"},
		{"prog completion ", "bash zsh fish"},
		{"prog completion f", "fish"},
	} {
		words := strings.Split(c.line, " ")
		cmd := exec.Command(bash, "--norc", "-c", `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _prog; echo "${COMPREPLY[*]}"`, "bash", script)
		cmd.Args = append(cmd.Args, words...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v\n%s", c.line, err, out)
		}
		if got := strings.TrimSpace(string(out)); got != c.want {
			t.Errorf("%q completes to %q, want %q", c.line, got, c.want)
		}
	}
}

// TestScriptsParse: every shell's script names every command and flag,
// and parses in the shells that are installed.
func TestScriptsParse(t *testing.T) {
	for _, sh := range Shells {
		var b bytes.Buffer
		if err := Write(&b, testProgram(), sh); err != nil {
			t.Fatal(err)
		}
		for _, w := range []string{"serve", "accounts", "list", "delete", "data", "listen", "pprof", "dir", "fish"} {
			if !strings.Contains(b.String(), w) {
				t.Errorf("%s script does not mention %q", sh, w)
			}
		}
		bin, err := exec.LookPath(sh)
		if err != nil {
			t.Logf("no %s here: its script is not parsed", sh)
			continue
		}
		cmd := exec.Command(bin, "-n")
		cmd.Stdin = &b
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s -n: %v\n%s", sh, err, out)
		}
	}
	if err := Write(&bytes.Buffer{}, testProgram(), "tcsh"); err == nil {
		t.Error("an unknown shell was accepted")
	}
}
