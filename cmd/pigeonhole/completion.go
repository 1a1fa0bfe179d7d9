package main

import (
	"fmt"
	"os"

	"github.com/pigeonhole/pigeonhole/cmd/internal/completion"
)

// shells are the arguments of "pigeonhole completion".
var shells = completion.Shells

const completionUsage = `usage: pigeonhole completion bash|zsh|fish

Prints a completion script for the shell, made from pigeonhole's own
command and flag tables:

  bash: source <(pigeonhole completion bash)      (e.g. in ~/.bashrc)
  zsh:  pigeonhole completion zsh > "${fpath[1]}/_pigeonhole"
  fish: pigeonhole completion fish > ~/.config/fish/completions/pigeonhole.fish
`

// completionCmd is "pigeonhole completion SHELL".
func completionCmd(args []string) int {
	if len(args) == 1 && isHelp(args[0]) {
		fmt.Print(completionUsage)
		return 0
	}
	if len(args) != 1 {
		fmt.Fprint(os.Stderr, completionUsage)
		return 2
	}
	if err := completion.Write(os.Stdout, completionSpec(), args[0]); err != nil {
		fmt.Fprintf(os.Stderr, "pigeonhole: %v\n%s", err, completionUsage)
		return 2
	}
	return 0
}

// completionSpec describes pigeonhole from its command table.
func completionSpec() completion.Command {
	return completion.Command{Name: "pigeonhole", Subs: specOf(commands())}
}

func specOf(table []command) []completion.Command {
	var out []completion.Command
	for _, c := range table {
		cc := completion.Command{Name: c.name, Help: c.help, Subs: specOf(c.subs), Words: c.words}
		if c.flags != nil {
			cc.Flags = completion.FlagsOf(c.flags())
		}
		out = append(out, cc)
	}
	return out
}
