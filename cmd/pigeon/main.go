// Command pigeon is Pigeonhole's end-to-end-encrypted messaging client for
// the terminal.
//
//	pigeon init -relay HOST:PORT -fingerprint HEX   create an identity and register (-name NAME)
//	pigeon id [-json]                               print this account's id
//	pigeon send ACCOUNT|GROUP TEXT                  send an end-to-end-encrypted message
//	pigeon recv [-json]                             print queued messages, then exit
//	pigeon listen [-json]                           print messages as they arrive
//	pigeon verify [-mark] ACCOUNT                   show (or mark as compared) the safety number
//	pigeon status [-json]                           identity, devices, relay reachability, prekeys
//	pigeon contact add|list|remove ...              local names for accounts
//	pigeon push-token apns|fcm|clear ...            register this device's push token
//	pigeon link ... | link -approve URI_OR_PNG      link a new device by QR code
//	pigeon devices [-json] | devices revoke ID      list or revoke the account's devices
//	pigeon send-file ACCOUNT PATH                   send a file, end-to-end encrypted
//	pigeon group create|send|add|remove|list ...    groups, on Signal sender keys
//	pigeon typing [-stop] ACCOUNT|GROUP             a typing indicator (online-only)
//	pigeon read ACCOUNT|GROUP                       send read receipts
//	pigeon delete ACCOUNT|GROUP ID                  delete a sent message for everyone
//	pigeon history ACCOUNT|GROUP                    the conversation, with sent/delivered/read marks
//	pigeon completion bash|zsh|fish                 print a shell completion script
//
// State (keys, sessions) lives in -dir, $PIGEON_HOME, or the user config
// directory's "pigeon" folder, with 0700/0600 modes. Messages follow the
// rules in UX.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/pigeonhole/pigeonhole/relay/client/messenger"
)

const usage = `usage: pigeon [-dir DIR] <command> [arguments]

commands:
  init -relay HOST:PORT -fingerprint HEX [-name NAME]
                                           create an identity and register it (-name: this
                                           device's name, shown by devices and status)
  id [-json]                               print this account's id (-json: with its device,
                                           identity key and relay, as one JSON object)
  send ACCOUNT|GROUP TEXT                  send an end-to-end-encrypted message; prints its id
                                           (TEXT "-" reads it from stdin; "--" before a TEXT
                                           starting with "-"; -v: say whether it went sealed,
                                           so that the relay learns no sender, or identified)
  recv                                     print queued messages, then exit
  listen                                   print messages as they arrive (Ctrl-C stops)
  verify [-mark] ACCOUNT                   show the safety number to compare with ACCOUNT and
                                           whether you verified it (-mark: you compared it;
                                           also accepts a changed identity key)
  status [-json]                           this device, the account's devices, the relay (is it
                                           reachable) and the one-time prekeys it holds
  contact add NAME ACCOUNT                 give an account a local name, usable wherever an
                                           ACCOUNT goes and shown instead of its id
  contact list                             the contacts and their account ids
  contact remove|rm NAME                   forget a contact's name
  push-token apns [-sandbox] TOPIC HEX     register an APNs device token (as an app does)
  push-token fcm TOKEN                     register an FCM registration token
  push-token clear                         remove this device's push token
  link -relay HOST:PORT -fingerprint HEX [-png FILE] [-name NAME]
                                           on a new device: show a QR code and join an account
  link -approve URI_OR_PNG                 on the primary: approve the new device
  devices [-json]                          list this account's devices (-json: one JSON
                                           object per device)
  devices revoke ID                        remove a device (primary only)
  send-file [-v] ACCOUNT PATH              send a file, end-to-end encrypted (-v: as for send)
  recv/listen [-save DIR]                  received files are saved in DIR (default .)
  recv/listen [-delete-limit 48h]          honour "delete for everyone" for messages this recent
  recv/listen [-json]                      print one JSON object per line (JSON Lines), for
                                           scripts; see UX.md for the fields
  group create NAME ACCOUNT...             make a group (you are its admin); prints its id
  group send GROUP TEXT                    the same as send GROUP TEXT
  group add|remove GROUP ACCOUNT...        change the members (admin only)
  group list                               the groups and their members
  typing [-stop] ACCOUNT|GROUP             show that you are typing to whoever is connected now
  read ACCOUNT|GROUP                       send read receipts for what you have received
  delete [-limit 48h] ACCOUNT|GROUP ID     delete a message you sent, for everyone
  history ACCOUNT|GROUP                    the conversation, with message ids and sent,
                                           delivered and read marks
  help [COMMAND]                           the commands, or one command's help
  completion bash|zsh|fish                 print a shell completion script
  version                                  print the version

ACCOUNT is an account id or a contact's name. GROUP is a group's id or
its name, when no other group (and no contact) has that name.

The state directory is -dir, else $PIGEON_HOME, else the "pigeon" folder
in the user config directory.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// cli carries what every command needs.
type cli struct {
	dir     string
	saveDir string    // where received files go (recv, listen)
	stdin   io.Reader // message text with "send ... -"
	stdout  io.Writer
	stderr  io.Writer
	// verbose (send -v, ...) says how each message went: sealed or
	// identified, and why.
	verbose bool
	// m is the command's Messenger (msgr.go), nil until one is needed.
	m *messenger.Messenger
}

// userError is an error whose message follows UX.md and may carry a hint.
type userError struct {
	msg, hint string
	usage     bool // the command was called the wrong way (exit 2)
}

func (e *userError) Error() string { return e.msg }

func failf(hint, format string, args ...any) error {
	return &userError{msg: fmt.Sprintf(format, args...), hint: hint}
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pigeon", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	dir := globalFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return 0
		}
		fmt.Fprint(stderr, usage)
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	c := &cli{dir: stateDir(*dir), stdin: os.Stdin, stdout: stdout, stderr: stderr}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	var err error
	if cmd != "help" && commandHelp(cmd) != "" && wantsHelp(rest) {
		fmt.Fprint(stdout, commandHelp(cmd))
		return 0
	}
	if command, ok := lookup(commands(), cmd); ok {
		err = command.run(c, ctx, rest)
		if c.m != nil {
			c.m.Close()
		}
	} else {
		err = usagef(`run "pigeon help" for the commands`, "unknown command %q", cmd)
	}
	if err == nil {
		return 0
	}
	var ic *identityChangedError
	if errors.As(err, &ic) {
		err = c.identityChangedFailure(ic.account)
	}
	var ue *userError
	if errors.As(err, &ue) {
		if ue.msg != "" {
			fmt.Fprintf(stderr, "pigeon: %s\n", ue.msg)
		}
		if ue.hint != "" {
			fmt.Fprintf(stderr, "pigeon: hint: %s\n", ue.hint)
		}
		if ue.usage {
			return 2
		}
		return 1
	}
	fmt.Fprintf(stderr, "pigeon: %v\n", err)
	return 1
}

// globalFlags declares the flags that come before the command.
func globalFlags(fs *flag.FlagSet) (dir *string) {
	return fs.String("dir", "", "state `directory`")
}

func stateDir(flagDir string) string {
	if flagDir != "" {
		return flagDir
	}
	if d := os.Getenv("PIGEON_HOME"); d != "" {
		return d
	}
	if d, err := os.UserConfigDir(); err == nil {
		return filepath.Join(d, "pigeon")
	}
	return ".pigeon"
}
