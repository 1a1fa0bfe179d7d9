package main

import (
	"flag"
	"io"
	"slices"
	"strings"

	"github.com/pigeonhole/pigeonhole/cmd/internal/completion"
)

const completionUsage = `pigeon completion bash|zsh|fish

  bash: source <(pigeon completion bash)      (e.g. in ~/.bashrc)
  zsh:  pigeon completion zsh > "${fpath[1]}/_pigeon"
  fish: pigeon completion fish > ~/.config/fish/completions/pigeon.fish`

// completion is "pigeon completion SHELL": a completion script made from
// the command table.
func (c *cli) completion(args []string) error {
	if len(args) != 1 || !slices.Contains(completion.Shells, args[0]) {
		return usagef(completionUsage, "completion needs a shell: bash, zsh or fish")
	}
	return completion.Write(c.stdout, completionSpec(), args[0])
}

// completionSpec describes pigeon from its command table and its global
// flags.
func completionSpec() completion.Command {
	global := flag.NewFlagSet("pigeon", flag.ContinueOnError)
	globalFlags(global)
	return completion.Command{Name: "pigeon", Flags: completion.FlagsOf(global), Subs: specOf("", commands())}
}

func specOf(prefix string, table []command) []completion.Command {
	var out []completion.Command
	for _, cmd := range table {
		path := strings.TrimSpace(prefix + " " + cmd.name)
		cc := completion.Command{Name: cmd.name, Help: helpFor(path), Subs: specOf(path, cmd.subs)}
		if cmd.flags != nil {
			fs := flag.NewFlagSet(cmd.name, flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			cmd.flags(fs)
			cc.Flags = completion.FlagsOf(fs)
		}
		if cmd.words != nil {
			cc.Words = cmd.words()
		}
		out = append(out, cc)
	}
	return out
}

// helpFor is the description of the command at path ("group create")
// in the usage text, "" if it has none.
func helpFor(path string) string {
	want := strings.Fields(path)
	var lines []string
	for l := range strings.Lines(usage) {
		lines = append(lines, strings.TrimRight(l, "\n"))
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, "  ") || strings.HasPrefix(l, "   ") {
			continue
		}
		synopsis, desc, _ := strings.Cut(strings.TrimSpace(l), "  ")
		words := strings.Fields(synopsis)
		if len(words) < len(want) {
			continue
		}
		match := true
		for j, w := range want {
			if !slices.Contains(strings.FieldsFunc(words[j], func(r rune) bool { return r == '|' || r == '/' }), w) {
				match = false
			}
		}
		if !match {
			continue
		}
		if desc = strings.TrimSpace(desc); desc == "" && i+1 < len(lines) && strings.HasPrefix(lines[i+1], "   ") {
			desc = strings.TrimSpace(lines[i+1])
		}
		return desc
	}
	return ""
}
