// Command pigeonhole runs a Pigeonhole relay.
//
//	pigeonhole serve [flags]              run the relay (Pebble in -data, nothing else needed)
//	pigeonhole fingerprint [flags]        print the certificate fingerprint clients pin
//	pigeonhole backup [-data DIR] DEST    back the data directory up, running or not
//	pigeonhole rotate-sender-key [-data DIR]  make the next sender certificate key (relay stopped)
//	pigeonhole accounts list|delete ID    list or delete accounts (operator)
//	pigeonhole queues stats               queue sizes: messages and bytes waiting, no contents
//	pigeonhole completion bash|zsh|fish   print a shell completion script
//	pigeonhole version                    print the version
//
// Run `pigeonhole serve -h` for every flag and the configuration precedence.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// command is one pigeonhole command. The usage text, the dispatch and
// shell completion are all made from this table, so they cannot disagree.
type command struct {
	name string
	// args names the arguments after the flags, for the usage text.
	args string
	help string
	// run runs the command with the arguments after its name (nil for a
	// command that only has subcommands).
	run func(args []string) int
	// flags returns a new flag set of the command, the one run parses
	// with (nil: no flags).
	flags func() *flag.FlagSet
	// subs are the subcommands (accounts list, ...).
	subs []command
	// words are the fixed words an argument may be (the shells of
	// "completion"), for shell completion.
	words []string
}

// commands returns the command table. (A function, not a variable: the
// completion command reads the table.)
func commands() []command {
	return []command{
		{name: "serve", help: "run the relay", run: serve,
			flags: func() *flag.FlagSet { return serveFlagSet(&serveFlags{}) }},
		{name: "fingerprint", help: "print the relay certificate's SHA-256 fingerprint", run: fingerprint,
			flags: func() *flag.FlagSet { return fingerprintFlagSet(&fingerprintFlags{}) }},
		{name: "backup", args: "DEST", help: "copy the data directory, while the relay runs or not", run: backup,
			flags: func() *flag.FlagSet { return backupFlagSet(new(string)) }},
		{name: "rotate-sender-key", help: "make the next sender certificate key (relay stopped)", run: rotateSenderKey,
			flags: func() *flag.FlagSet { return rotateSenderKeyFlagSet(&adminFlags{}) }},
		{name: "accounts", help: "list or delete accounts (operator)", subs: []command{
			{name: "list", help: "list the accounts: id, devices, created, last seen", run: accountsList,
				flags: func() *flag.FlagSet { return accountsListFlagSet(&adminFlags{}) }},
			{name: "delete", args: "ACCOUNT", help: "delete an account: its keys, devices, queues and push tokens", run: accountsDelete,
				flags: func() *flag.FlagSet { return accountsDeleteFlagSet(&adminFlags{}) }},
		}},
		{name: "queues", help: "queue statistics (operator)", subs: []command{
			{name: "stats", help: "messages and bytes waiting, in total and in the largest queues; no contents", run: queuesStats,
				flags: func() *flag.FlagSet { return queuesStatsFlagSet(&adminFlags{}) }},
		}},
		{name: "completion", args: "bash|zsh|fish", help: "print a shell completion script", run: completionCmd, words: shells},
		{name: "version", help: "print the version", run: func([]string) int { printVersion(os.Stdout); return 0 }},
	}
}

// usage is the top-level help, made from the command table.
func usage() string {
	var b strings.Builder
	b.WriteString("usage: pigeonhole <command> [flags]\n\ncommands:\n")
	for _, c := range commands() {
		if len(c.subs) == 0 {
			writeUsageLine(&b, c.name, c)
			continue
		}
		for _, s := range c.subs {
			writeUsageLine(&b, c.name+" "+s.name, s)
		}
	}
	b.WriteString("\nrun \"pigeonhole <command> -h\" for the flags of a command.\n")
	return b.String()
}

// writeUsageLine writes one command of the usage text: its name and
// arguments, then its help in a column (or on the next line, when the
// name is too long for the column).
func writeUsageLine(w io.Writer, name string, c command) {
	const col = 26
	lead := strings.TrimSpace(name + " " + c.args)
	if len(lead) >= col {
		fmt.Fprintf(w, "  %s\n  %-*s %s\n", lead, col, "", c.help)
		return
	}
	fmt.Fprintf(w, "  %-*s %s\n", col, lead, c.help)
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	return slices.Contains([]string{"-h", "-help", "--help", "help"}, arg)
}

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage())
		return 2
	}
	if isHelp(args[0]) {
		fmt.Fprint(os.Stdout, usage())
		return 0
	}
	return dispatch("pigeonhole", commands(), args)
}

// dispatch runs the command of table that args[0] names.
func dispatch(prefix string, table []command, args []string) int {
	i := slices.IndexFunc(table, func(c command) bool { return c.name == args[0] })
	if i < 0 {
		fmt.Fprintf(os.Stderr, "pigeonhole: unknown command %q\n%s", strings.TrimSpace(strings.TrimPrefix(prefix, "pigeonhole")+" "+args[0]), usage())
		return 2
	}
	c := table[i]
	if c.run != nil {
		return c.run(args[1:])
	}
	name := prefix + " " + c.name
	if len(args) < 2 || isHelp(args[1]) {
		w, code := io.Writer(os.Stderr), 2
		if len(args) >= 2 {
			w, code = os.Stdout, 0
		}
		fmt.Fprintf(w, "usage:\n")
		for _, s := range c.subs {
			writeUsageLine(w, name+" "+s.name, s)
		}
		return code
	}
	return dispatch(name, c.subs, args[1:])
}

// fail prints an error in the house style and returns exit code 1.
func fail(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "pigeonhole: "+format+"\n", args...)
	return 1
}
