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
	var (
		set  func(context.Context, *client.Conn) error
		what string
	)
	switch args[0] {
	case "apns":
		fs := flag.NewFlagSet("push-token apns", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		sandbox := fs.Bool("sandbox", false, "")
		if err := fs.Parse(args[1:]); err != nil || fs.NArg() != 2 {
			return failf(pushTokenUsage, "push-token apns needs the app's bundle id and the device token in hex")
		}
		topic := fs.Arg(0)
		tok, err := hex.DecodeString(fs.Arg(1))
		if err != nil || len(tok) == 0 {
			return failf(pushTokenUsage, "%q is not a device token in hex", fs.Arg(1))
		}
		set = func(ctx context.Context, conn *client.Conn) error {
			return conn.SetAPNsToken(ctx, tok, topic, *sandbox)
		}
		env := "production"
		if *sandbox {
			env = "sandbox"
		}
		what = fmt.Sprintf("the relay will wake this device through APNs (%s, %s) when mail waits", topic, env)
	case "fcm":
		if len(args) != 2 || args[1] == "" {
			return failf(pushTokenUsage, "push-token fcm needs the registration token")
		}
		set = func(ctx context.Context, conn *client.Conn) error { return conn.SetFCMToken(ctx, args[1]) }
		what = "the relay will wake this device through FCM when mail waits"
	case "clear":
		if len(args) != 1 {
			return failf(pushTokenUsage, "push-token clear takes no arguments")
		}
		set = func(ctx context.Context, conn *client.Conn) error { return conn.ClearPushToken(ctx) }
		what = "push token removed; the relay will not wake this device"
	default:
		return failf(pushTokenUsage, "unknown push provider %q", args[0])
	}
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
