package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/spec"
)

const pushTokenUsage = `pigeon push-token apns [-sandbox] TOPIC HEXTOKEN | fcm TOKEN | clear`

// pushToken registers this device's push token with the relay, as an app
// does with the token iOS or Firebase gives it (for testing from the
// terminal), or removes it.
func (c *cli) pushToken(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return failf(pushTokenUsage, "push-token needs a provider: apns, fcm or clear")
	}
	sub, ok := lookup(pushTokenCommands(), args[0])
	if !ok {
		return failf(pushTokenUsage, "unknown push provider %q", args[0])
	}
	return sub.run(c, ctx, args[1:])
}

// pushSetter sets or clears this device's push token on conn.
type pushSetter func(context.Context, *client.Conn) error

// pushTokenCommands are the subcommands of "pigeon push-token": each
// parses its arguments into a setter and the sentence said once it
// worked.
func pushTokenCommands() []command {
	sub := func(name string, parse func(args []string) (pushSetter, string, error), flags func(*flag.FlagSet)) command {
		return command{name: name, flags: flags, run: func(c *cli, ctx context.Context, args []string) error {
			set, what, err := parse(args)
			if err != nil {
				return err
			}
			return c.setPushToken(ctx, set, what)
		}}
	}
	return []command{
		sub("apns", parseAPNsToken, func(fs *flag.FlagSet) { apnsFlags(fs) }),
		sub("fcm", parseFCMToken, nil),
		sub("clear", parseClearToken, nil),
	}
}

// apnsFlags declares the flags of "pigeon push-token apns".
func apnsFlags(fs *flag.FlagSet) (sandbox *bool) {
	return fs.Bool("sandbox", false, "the token is from Apple's sandbox (a development build)")
}

func parseAPNsToken(args []string) (pushSetter, string, error) {
	fs := flag.NewFlagSet("push-token apns", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	sandbox := apnsFlags(fs)
	if err := fs.Parse(args); err != nil || fs.NArg() != 2 {
		return nil, "", failf(pushTokenUsage, "push-token apns needs the app's bundle id and the device token in hex")
	}
	topic := fs.Arg(0)
	tok, err := hex.DecodeString(fs.Arg(1))
	if err != nil || len(tok) == 0 {
		return nil, "", failf(pushTokenUsage, "%q is not a device token in hex", fs.Arg(1))
	}
	env := "production"
	if *sandbox {
		env = "sandbox"
	}
	return func(ctx context.Context, conn *client.Conn) error {
		return conn.SetAPNsToken(ctx, tok, topic, *sandbox)
	}, fmt.Sprintf("the relay will wake this device through APNs (%s, %s) when mail waits", topic, env), nil
}

func parseFCMToken(args []string) (pushSetter, string, error) {
	if len(args) != 1 || args[0] == "" {
		return nil, "", failf(pushTokenUsage, "push-token fcm needs the registration token")
	}
	return func(ctx context.Context, conn *client.Conn) error { return conn.SetFCMToken(ctx, args[0]) },
		"the relay will wake this device through FCM when mail waits", nil
}

func parseClearToken(args []string) (pushSetter, string, error) {
	if len(args) != 0 {
		return nil, "", failf(pushTokenUsage, "push-token clear takes no arguments")
	}
	return func(ctx context.Context, conn *client.Conn) error { return conn.ClearPushToken(ctx) },
		"push token removed; the relay will not wake this device", nil
}

// setPushToken connects and runs set, then says what.
func (c *cli) setPushToken(ctx context.Context, set pushSetter, what string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, conn, err := c.sendOnly(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := set(ctx, conn); err != nil {
		var re *client.Error
		if errors.As(err, &re) && spec.Code(re.Code) == spec.CodePushUnavailable {
			return failf("the relay's operator turns push on with -apns-key or -fcm-credentials (README, \"Push notifications\")",
				"the relay said PUSH_UNAVAILABLE: %s", re.Message)
		}
		return relayError("set push token", err)
	}
	fmt.Fprintf(c.stderr, "pigeon: %s\n", what)
	return nil
}
