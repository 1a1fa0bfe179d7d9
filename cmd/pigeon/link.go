package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base32"
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
// wait for the primary's provisioning message, then register as a new
// device of the account.
func (c *cli) joinAccount(ctx context.Context, opts *client.Options, pngPath, name string) error {
	if _, err := e2e.Open(c.dir); err == nil {
		return failf("use another -dir for another device", "%s already holds an identity", c.dir)
	}
	conn, err := dial(ctx, opts)
	if err != nil {
		return err
	}
	defer conn.Close()
	prov, err := conn.OpenProvisioning(ctx)
	if err != nil {
		return relayError("start linking", err)
	}
	defer prov.Close()
	key, err := e2e.NewProvisioningKey()
	if err != nil {
		return err
	}
	uri := client.LinkURI{Relay: opts.Addr, Fingerprint: opts.Fingerprint, Address: prov.Address, PublicKey: key.Public()}.String()
	qr, err := qrTerminal(uri)
	if err != nil {
		return err
	}
	fmt.Fprint(c.stderr, qr)
	if pngPath != "" {
		if err := writeQRPNG(pngPath, uri); err != nil {
			return err
		}
	}
	fmt.Fprintln(c.stdout, uri)
	fmt.Fprintf(c.stderr, "pigeon: on your primary device run: pigeon link -approve URI (the line above) or scan the code; it is valid until %s\n", prov.Expires.Format("15:04"))
	fmt.Fprintf(c.stderr, "pigeon: check code %s: the primary device must show the same before you approve\n", checkCode(key.Public()))

	sealed, err := prov.Wait(ctx)
	var re *client.Error
	if errors.As(err, &re) && spec.Code(re.Code) == spec.CodeUnknownAddress {
		return failf(`run "pigeon link" again for a new code`, "the code expired before it was approved")
	}
	if err != nil {
		return relayError("wait for approval", err)
	}
	p, err := key.Open(sealed)
	if err != nil {
		return failf("approve again from the primary device", "the approval could not be read: %v", err)
	}
	dev, reg, err := e2e.CreateLinked(c.dir, p, initialPreKeys)
	if err != nil {
		return err
	}
	undo := func() {
		for _, n := range []string{"device.json", "prekeys", "kemprekeys", "signed", "lock"} {
			_ = os.RemoveAll(filepath.Join(c.dir, n))
		}
	}
	sealedName, err := dev.SealDeviceName(truncateName(name))
	if err != nil {
		undo()
		return err
	}
	acct, err := conn.LinkDevice(ctx, p.AccountID, p.LinkCode, reg, sealedName)
	if err != nil {
		undo()
		if errors.As(err, &re) {
			switch spec.Code(re.Code) {
			case spec.CodeBadLinkCode:
				return failf(`run "pigeon link" again and approve it within 10 minutes`, "the relay said BAD_LINK_CODE: the approval expired or was used")
			case spec.CodeTooManyDevices:
				return failf(`on the primary device run "pigeon devices" and "pigeon devices revoke ID"`, "the relay said TOO_MANY_DEVICES: the account has no room for another device")
			}
		}
		return relayError("link", err)
	}
	if err := dev.Registered(acct.AccountID, acct.DeviceID); err != nil {
		return err
	}
	b, _ := json.Marshal(relayInfo{Addr: opts.Addr, Fingerprint: opts.Fingerprint})
	if err := os.WriteFile(filepath.Join(c.dir, relayFile), b, 0o600); err != nil {
		return err
	}
	if err := c.saveLocalName(truncateName(name)); err != nil {
		return err
	}
	c.uploadFirstKEMPreKeys(ctx, false)
	fmt.Fprintf(c.stderr, "pigeon: linked as device %d of %s\n", acct.DeviceID, hex.EncodeToString(acct.AccountID))
	return nil
}

// truncateName keeps a name within what SealDeviceName takes, on a rune
// boundary.
func truncateName(name string) string {
	for len(name) > e2e.MaxDeviceName {
		name = name[:len(name)-1]
	}
	return strings.ToValidUTF8(name, "")
}

// approve is the primary's side: read the new device's link URI (or its
// QR code PNG), get a link code and send it with this identity, sealed to
// the new device's key.
func (c *cli) approve(ctx context.Context, arg string, yes bool) error {
	text := arg
	if !strings.HasPrefix(arg, "pigeonhole:") {
		var err error
		if text, err = readQRPNG(arg); err != nil {
			return failf("pass the link URI the new device printed, or a PNG of its QR code", "%v", err)
		}
	}
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
	check := checkCode(uri.PublicKey)
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
	d, conn, err := c.sendOnly(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	code, _, err := conn.CreateLinkCode(ctx)
	if err != nil {
		return relayError("link", err)
	}
	sealed, err := d.SealProvisioning(uri.PublicKey, code)
	if err != nil {
		return err
	}
	if err := conn.Provision(ctx, uri.Address, sealed); err != nil {
		var re *client.Error
		if errors.As(err, &re) && spec.Code(re.Code) == spec.CodeUnknownAddress {
			return failf(`run "pigeon link" on the new device again and approve its new code`, "the new device is no longer waiting (its code expired or was used)")
		}
		return relayError("link", err)
	}
	fmt.Fprintln(c.stderr, "pigeon: approved; the new device is joining this account")
	return nil
}

// checkCode is what both sides of a link show so the person can tell
// that the device being approved is the one in their hand: the first 40
// bits of SHA-256 of the new device's provisioning key, as 3 groups of
// base32 letters and digits.
func checkCode(pub []byte) string {
	h := sha256.Sum256(pub)
	s := base32.StdEncoding.EncodeToString(h[:5]) // 8 characters
	return s[0:3] + "-" + s[3:6] + "-" + s[6:8]
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
