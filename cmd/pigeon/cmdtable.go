package main

import (
	"context"
	"flag"
	"slices"

	"github.com/pigeonhole/pigeonhole/cmd/internal/completion"
)

// command is one pigeon command or subcommand. run() dispatches through
// this table and shell completion is made from it, with the flags each
// command really parses (flags declares them on the command's own flag
// set), so neither can drift from the other.
type command struct {
	name string
	run  func(c *cli, ctx context.Context, args []string) error
	// flags declares the command's flags on fs (nil: none).
	flags func(fs *flag.FlagSet)
	// subs are subcommands (group create, push-token apns, ...): run
	// dispatches to them.
	subs []command
	// words are the fixed words an argument may be, for completion.
	words func() []string
}

// commands returns the command table. (A function, not a variable: help
// and completion read it.)
func commands() []command {
	return []command{
		{name: "init", run: (*cli).init, flags: func(fs *flag.FlagSet) { new(initFlags).register(fs) }},
		{name: "id", run: func(c *cli, _ context.Context, args []string) error { return c.id(args) },
			flags: func(fs *flag.FlagSet) { idFlags(fs, new(bool)) }},
		{name: "send", run: (*cli).send, flags: func(fs *flag.FlagSet) { verboseFlag(fs, new(bool)) }},
		{name: "recv", run: func(c *cli, ctx context.Context, args []string) error { return c.receive(ctx, args, false) },
			flags: func(fs *flag.FlagSet) { new(receiveFlags).register(fs) }},
		{name: "listen", run: func(c *cli, ctx context.Context, args []string) error { return c.receive(ctx, args, true) },
			flags: func(fs *flag.FlagSet) { new(receiveFlags).register(fs) }},
		{name: "verify", run: func(c *cli, _ context.Context, args []string) error { return c.verify(args) },
			flags: func(fs *flag.FlagSet) { verifyFlags(fs) }},
		{name: "contact", run: (*cli).contact, subs: contactCommands()},
		{name: "status", run: (*cli).status, flags: func(fs *flag.FlagSet) { statusFlags(fs, new(bool)) }},
		{name: "push-token", run: (*cli).pushToken, subs: pushTokenCommands()},
		{name: "link", run: (*cli).link, flags: func(fs *flag.FlagSet) { new(linkFlags).register(fs) }},
		{name: "devices", run: (*cli).devices, subs: []command{{name: revokeCommand}},
			flags: func(fs *flag.FlagSet) { devicesFlags(fs, new(bool)) }},
		{name: "send-file", run: (*cli).sendFile, flags: func(fs *flag.FlagSet) { verboseFlag(fs, new(bool)) }},
		{name: "group", run: (*cli).group, subs: groupCommands()},
		{name: "typing", run: (*cli).typing, flags: func(fs *flag.FlagSet) { typingFlags(fs) }},
		{name: "read", run: (*cli).read},
		{name: "delete", run: (*cli).deleteForEveryone, flags: func(fs *flag.FlagSet) { deleteFlags(fs) }},
		{name: "history", run: func(c *cli, _ context.Context, args []string) error { return c.history(args) }},
		{name: "version", run: func(c *cli, _ context.Context, args []string) error { printVersion(c.stdout); return nil }},
		{name: "help", run: func(c *cli, _ context.Context, args []string) error { return c.help(args) }, words: commandNames},
		{name: "completion", run: func(c *cli, _ context.Context, args []string) error { return c.completion(args) },
			words: func() []string { return completion.Shells }},
	}
}

// commandNames are the names of the top-level commands.
func commandNames() []string {
	var out []string
	for _, c := range commands() {
		out = append(out, c.name)
	}
	return out
}

// lookup returns the command of table called name.
func lookup(table []command, name string) (command, bool) {
	i := slices.IndexFunc(table, func(c command) bool { return c.name == name })
	if i < 0 {
		return command{}, false
	}
	return table[i], true
}
