package main

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// helpFlags are the arguments that ask for help wherever they stand
// (before a "--", after which every argument is taken literally, so
// `pigeon send ACCOUNT -- -h` sends "-h").
var helpFlags = []string{"-h", "-help", "--help"}

// wantsHelp reports whether args ask for help.
func wantsHelp(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if slices.Contains(helpFlags, a) {
			return true
		}
	}
	return false
}

// commandHelp returns the lines of the usage text that describe cmd
// (with their continuation lines), or "" for an unknown command.
func commandHelp(cmd string) string {
	var b strings.Builder
	in := false
	for l := range strings.Lines(usage) {
		if !strings.HasPrefix(l, "  ") {
			in = false
			continue
		}
		if !strings.HasPrefix(l, "   ") { // a command line, not a continuation
			name, _, _ := strings.Cut(strings.TrimSpace(l), " ")
			in = slices.Contains(strings.Split(name, "/"), cmd)
		}
		if in {
			b.WriteString(l)
		}
	}
	if b.Len() == 0 {
		return ""
	}
	return "usage: pigeon [-dir DIR] " + strings.TrimPrefix(b.String(), "  ")
}

// help is "pigeon help [COMMAND]".
func (c *cli) help(args []string) error {
	if len(args) > 1 {
		return usagef("pigeon help [COMMAND]", "help takes at most one command")
	}
	return printHelp(c.stdout, strings.Join(args, ""))
}

// printHelp writes cmd's help to w, or the whole usage for "".
func printHelp(w io.Writer, cmd string) error {
	if cmd == "" {
		fmt.Fprint(w, usage)
		return nil
	}
	h := commandHelp(cmd)
	if h == "" {
		return usagef(`run "pigeon help" for the commands`, "unknown command %q", cmd)
	}
	fmt.Fprint(w, h)
	return nil
}

// flagSet returns a flag set for cmd whose errors go to stderr, followed
// by cmd's help (never "Usage of ..." with another command's name).
func (c *cli) flagSet(cmd string) *flag.FlagSet {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() { fmt.Fprint(c.stderr, commandHelp(strings.Fields(cmd)[0])) }
	return fs
}

// usagef is a usage error: the command was called the wrong way. It
// exits 2, as UX.md says.
func usagef(hint, format string, args ...any) error {
	return &userError{msg: fmt.Sprintf(format, args...), hint: hint, usage: true}
}

// errUsageShown is a usage error the flag package has already explained
// (the bad flag, then the command's help): nothing more is printed.
var errUsageShown = &userError{usage: true}
