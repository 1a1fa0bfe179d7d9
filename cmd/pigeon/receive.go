package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"time"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/client/messenger"
)

// defaultDeleteLimit is how old a message may be and still be deleted for
// everyone: the sender's "pigeon delete" refuses older ones, and
// receivers ignore deletes of messages they got longer ago.
const defaultDeleteLimit = 48 * time.Hour

// receiveFlags are the flags of "pigeon recv" and "pigeon listen".
type receiveFlags struct {
	count       int
	saveDir     string
	deleteLimit time.Duration
	json        bool
}

func (f *receiveFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&f.count, "n", 0, "exit after printing this many messages (listen; 0: never)")
	fs.StringVar(&f.saveDir, "save", ".", "save received files in this `directory`")
	fs.DurationVar(&f.deleteLimit, "delete-limit", defaultDeleteLimit, "honour \"delete for everyone\" for messages received at most this `long` ago")
	jsonFlag(fs, &f.json)
}

// receive prints messages: what is queued (recv), or everything until
// interrupted (listen). The Messenger receives, decrypts and acks; inbox
// (inbox.go) is its Handler, which records and prints.
func (c *cli) receive(ctx context.Context, args []string, follow bool) error {
	name := "recv"
	if follow {
		name = "listen"
	}
	fs := c.flagSet(name)
	var f receiveFlags
	f.register(fs)
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	c.saveDir = f.saveDir
	if fs.NArg() != 0 {
		return usagef("pigeon "+name+" [-json] [-save DIR] [-delete-limit 48h]", "%s takes no arguments", name)
	}
	d, opts, _, err := c.registered()
	if err != nil {
		return err
	}
	unlock, err := c.lockReceiving()
	if err != nil {
		return err
	}
	defer unlock()
	cleanStaleParts(c.saveDir, time.Now())
	if !follow {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
	}
	m, err := c.receiver(opts, f.deleteLimit)
	if err != nil {
		return err
	}
	defer m.Close()
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	in := &inbox{c: c, d: d, m: m, ctx: ctx, stop: stop, follow: follow, deleteLimit: f.deleteLimit, json: f.json, limit: f.count}
	if follow {
		fmt.Fprintln(c.stderr, "pigeon: listening; Ctrl-C stops")
		err = m.Run(ctx, in)
	} else {
		err = m.RunUntilDrained(ctx, in)
	}
	in.flush(false)
	switch {
	case in.unreachable != nil:
		// recv fails at once, and as clearly as send, when the relay
		// cannot be reached, instead of retrying until its deadline.
		return unreachableError(opts, in.unreachable)
	case errors.Is(err, client.ErrFingerprint):
		return unreachableError(opts, err)
	case err != nil:
		return relayError("receive", err)
	case !follow && !in.drained && ctx.Err() != nil && !in.stopped:
		return relayError("receive", context.DeadlineExceeded)
	}
	return nil
}

// receiver opens the device's Messenger for receiving: a session with
// a window (unlike every other command's send-only one), retrying while
// the relay is away (listen reports it, recv gives up at once), group
// state in the conversation files, and the key schedule kept by inbox,
// which says when it replaced keys.
func (c *cli) receiver(opts *client.Options, deleteLimit time.Duration) (*messenger.Messenger, error) {
	s, err := messenger.OpenDir(c.dir)
	if err != nil {
		return nil, err
	}
	cfg := &messenger.Config{RelayAddr: opts.Addr, Fingerprint: opts.Fingerprint, NoKeySchedule: true,
		DeleteLimitMillis: max(deleteLimit.Milliseconds(), 1)}
	m, err := messenger.OpenStore(&cliStore{DirStore: s, stamp: filepath.Join(c.dir, rotatedFile)}, cfg, nil)
	if err != nil {
		return nil, err
	}
	m.UseGroupStates(chatGroups{c})
	return m, nil
}
