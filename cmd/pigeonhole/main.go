// Command pigeonhole runs a Pigeonhole relay.
//
//	pigeonhole serve [flags]        run the relay (Pebble in -data, nothing else needed)
//	pigeonhole fingerprint [flags]  print the certificate fingerprint clients pin
//	pigeonhole backup [-data DIR] DEST  back the data directory up, running or not
//	pigeonhole version              print the version
//
// Run `pigeonhole serve -h` for every flag and the configuration precedence.
package main

import (
	"fmt"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

const usage = `usage: pigeonhole <command> [flags]

commands:
  serve        run the relay
  fingerprint  print the relay certificate's SHA-256 fingerprint
  backup       copy the data directory, while the relay runs or not
  version      print the version

run "pigeonhole <command> -h" for the flags of a command.
`

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:])
	case "fingerprint":
		return fingerprint(args[1:])
	case "backup":
		return backup(args[1:])
	case "version":
		printVersion(os.Stdout)
		return 0
	case "-h", "-help", "--help", "help":
		fmt.Fprint(os.Stdout, usage)
		return 0
	default:
		fmt.Fprintf(os.Stderr, "pigeonhole: unknown command %q\n%s", args[0], usage)
		return 2
	}
}

// fail prints an error in the house style and returns exit code 1.
func fail(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "pigeonhole: "+format+"\n", args...)
	return 1
}
