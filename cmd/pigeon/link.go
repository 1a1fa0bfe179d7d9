package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
	"github.com/pigeonhole/pigeonhole/relay/client/messenger"
	"github.com/pigeonhole/pigeonhole/spec"
)

const linkUsage = `pigeon link -relay HOST:PORT -fingerprint HEX [-png FILE] [-name NAME]   (on the new device)
pigeon link -approve URI_OR_PNG                                           (on the primary device)`

// linkFlags are the flags of "pigeon link".
type linkFlags struct {
	addr, fp, png, name, approve string
	yes                          bool
}

func (f *linkFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.addr, "relay", "", "relay `host:port`")
	fs.StringVar(&f.fp, "fingerprint", "", "relay certificate `fingerprint`")
	fs.StringVar(&f.png, "png", "", "also write the QR code to this PNG `file`")
	fs.StringVar(&f.name, "name", "", "this device's `name`, as the account's devices will list it (default: the host name)")
	fs.StringVar(&f.approve, "approve", "", "approve the new device whose link URI or QR code PNG `file` this is")
	fs.BoolVar(&f.yes, "yes", false, "with -approve: do not ask (the check code is still printed)")
}

// link runs either side of linking a device: the new device shows a code
// and waits; the primary approves it.
func (c *cli) link(ctx context.Context, args []string) error {
	fs := c.flagSet("link")
	var f linkFlags
	f.register(fs)
	addr, fp, png, name, approve, yes := &f.addr, &f.fp, &f.png, &f.name, &f.approve, &f.yes
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	if fs.NArg() != 0 {
		return usagef(linkUsage, "link takes flags only")
	}
	if *approve != "" {
		return c.approve(ctx, *approve, *yes)
	}
	if *addr == "" || *fp == "" {
		return usagef(linkUsage, "link needs the relay address and its certificate fingerprint")
	}
	if err := checkRelayFlags(*addr, *fp); err != nil {
		return err
	}
	if *name == "" {
		*name, _ = os.Hostname()
	}
	return c.joinAccount(ctx, &client.Options{Addr: *addr, Fingerprint: *fp}, *png, *name)
}

// joinAccount is the new device's side: show the link URI as a QR code,
// wait for the primary's approval, then join the account as a new
// device (messenger.StartLink and Link.Wait).
func (c *cli) joinAccount(ctx context.Context, opts *client.Options, pngPath, name string) error {
	l, err := messenger.StartLink(ctx, c.dir, config(opts), name)
	if errors.Is(err, e2e.ErrExists) {
		return failf("use another -dir for another device", "%s already holds an identity", c.dir)
	}
	if err != nil {
		return messengerError("start linking", opts, err)
	}
	defer l.Close()
	qr, err := qrTerminal(l.URI)
	if err != nil {
		return err
	}
	fmt.Fprint(c.stderr, qr)
	if pngPath != "" {
		if err := writeQRPNG(pngPath, l.URI); err != nil {
			return err
		}
	}
	fmt.Fprintln(c.stdout, l.URI)
	fmt.Fprintf(c.stderr, "pigeon: on your primary device run: pigeon link -approve URI (the line above) or scan the code; it is valid until %s\n", l.Expires.Format("15:04"))
	fmt.Fprintf(c.stderr, "pigeon: check code %s: the primary device must show the same before you approve\n", l.CheckCode)

	m, err := l.Wait(ctx)
	pending := errors.Is(err, messenger.ErrPreKeysPending)
	var re *client.Error
	switch {
	case pending:
	case errors.As(err, &re) && spec.Code(re.Code) == spec.CodeUnknownAddress:
		return failf(`run "pigeon link" again for a new code`, "the code expired before it was approved")
	case errors.As(err, &re) && spec.Code(re.Code) == spec.CodeBadLinkCode:
		return failf(`run "pigeon link" again and approve it within 10 minutes`, "the relay said BAD_LINK_CODE: the approval expired or was used")
	case errors.As(err, &re) && spec.Code(re.Code) == spec.CodeTooManyDevices:
		return failf(`on the primary device run "pigeon devices" and "pigeon devices revoke ID"`, "the relay said TOO_MANY_DEVICES: the account has no room for another device")
	case errors.Is(err, messenger.ErrBadLink):
		return failf("approve again from the primary device", "%s", strings.TrimPrefix(err.Error(), messenger.ErrBadLink.Error()+": "))
	case err != nil:
		return messengerError("link", opts, err)
	}
	defer m.Close()
	b, _ := json.Marshal(relayInfo{Addr: opts.Addr, Fingerprint: opts.Fingerprint})
	if err := os.WriteFile(filepath.Join(c.dir, relayFile), b, 0o600); err != nil {
		return err
	}
	if err := c.saveLocalName(messenger.DeviceName(name)); err != nil {
		return err
	}
	if pending {
		c.kemPreKeysPending(err)
	}
	fmt.Fprintf(c.stderr, "pigeon: linked as device %d of %s\n", m.DeviceID(), hex.EncodeToString(m.AccountID()))
	return nil
}

// approve is the primary's side: read the new device's link URI (or its
// QR code PNG), show its check code and, once the person agreed, let it
// join (Messenger.ApproveLink).
func (c *cli) approve(ctx context.Context, arg string, yes bool) error {
	text := arg
	if !strings.HasPrefix(arg, "pigeonhole:") {
		var err error
		if text, err = readQRPNG(arg); err != nil {
			return failf("pass the link URI the new device printed, or a PNG of its QR code", "%v", err)
		}
	}
	// Parsed here too, so that a URI for another relay is refused before
	// the person is asked.
	uri, err := client.ParseLinkURI(text)
	if err != nil {
		return failf("pass the link URI the new device printed, or a PNG of its QR code", "%v", err)
	}
	opts, err := c.options()
	if err != nil {
		return err
	}
	if !strings.EqualFold(uri.Fingerprint, opts.Fingerprint) {
		return failf("link the new device with this device's relay: "+opts.Addr, "the new device is using another relay")
	}
	// Whoever holds this account's keys can read all it gets: the person
	// checks that the code shown is the one on the device in their hand,
	// not one an attacker slipped in.
	check, err := messenger.LinkCheckCode(text)
	if err != nil {
		return err
	}
	if yes {
		fmt.Fprintf(c.stderr, "pigeon: approving the new device with check code %s\n", check)
	} else {
		fmt.Fprintf(c.stderr, "pigeon: the new device must show check code %s; it will read everything this account receives. approve it? [y/N] ", check)
		answer, _ := bufio.NewReader(c.stdin).ReadString('\n')
		if f, ok := c.stdin.(*os.File); !ok || !isTerminal(f) {
			fmt.Fprintln(c.stderr) // a terminal echoed the user's Enter
		}
		if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
			return failf("run it again and answer y if the codes match (or pass -yes)", "not approved")
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	m, _, err := c.openMessenger()
	if err != nil {
		return err
	}
	defer m.Close()
	err = m.ApproveLink(ctx, text)
	var re *client.Error
	if errors.As(err, &re) && spec.Code(re.Code) == spec.CodeUnknownAddress {
		return failf(`run "pigeon link" on the new device again and approve its new code`, "the new device is no longer waiting (its code expired or was used)")
	}
	if err != nil {
		return messengerError("link", opts, err)
	}
	fmt.Fprintln(c.stderr, "pigeon: approved; the new device is joining this account")
	return nil
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
