package main

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"time"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
)

// statusJSON is what "pigeon status -json" prints. The field names are
// stable and documented in UX.md.
type statusJSON struct {
	Account    string `json:"account"`
	Device     uint32 `json:"device"`
	DeviceName string `json:"device_name"` // "" when it has none
	Relay      string `json:"relay"`
	// Reachable is whether the relay answered and accepted this device
	// (always present).
	Reachable bool `json:"reachable"`
	// Devices and PreKeys come from the relay: left out when it could
	// not be reached. PreKeys is how many one-time prekeys it holds for
	// this device.
	Devices []deviceJSON `json:"devices,omitempty"`
	PreKeys *int         `json:"prekeys,omitempty"`
	// KemPreKeys is how many one-time post-quantum (ML-KEM-1024) prekeys
	// the relay holds for this device, KemLastResort whether it holds the
	// device's last-resort one.
	KemPreKeys    *int  `json:"kem_prekeys,omitempty"`
	KemLastResort *bool `json:"kem_last_resort,omitempty"`
}

// statusFlags declares the flags of "pigeon status".
func statusFlags(fs *flag.FlagSet, asJSON *bool) { jsonFlag(fs, asJSON) }

// status prints this device's identity, then what the relay says: the
// account's devices and this device's one-time prekeys. The local part
// is printed even when the relay cannot be reached. The protocol has no
// request for the number of queued messages, so that is not shown.
func (c *cli) status(ctx context.Context, args []string) error {
	fs := c.flagSet("status")
	var asJSON bool
	statusFlags(fs, &asJSON)
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	if fs.NArg() != 0 {
		return usagef("pigeon status [-json]", "status takes no arguments")
	}
	d, opts, creds, err := c.registered()
	if err != nil {
		return err
	}
	st := statusJSON{Account: hex.EncodeToString(d.AccountID()), Device: d.DeviceID(), DeviceName: c.localName(), Relay: opts.Addr}
	infos, counts, relayErr := c.askRelay(ctx, opts, creds)
	if relayErr == nil {
		st.Reachable, st.PreKeys = true, &counts.PreKeys
		st.KemPreKeys, st.KemLastResort = &counts.KemPreKeys, &counts.KemLastResort
		for _, in := range infos {
			j, _ := c.deviceRow(fromRelay(d, in))
			st.Devices = append(st.Devices, j)
			if j.This && j.Name != "" {
				st.DeviceName = j.Name
			}
		}
	}
	if asJSON {
		emit(c.stdout, st)
		return relayErr
	}
	name := ""
	if st.DeviceName != "" {
		name = " (" + st.DeviceName + ")"
	}
	fmt.Fprintf(c.stdout, "account: %s\n", st.Account)
	fmt.Fprintf(c.stdout, "this device: %d%s\n", st.Device, name)
	if relayErr != nil {
		fmt.Fprintf(c.stdout, "relay: %s, unreachable\n", opts.Addr)
		return relayErr
	}
	fmt.Fprintf(c.stdout, "relay: %s, reachable\n", opts.Addr)
	fmt.Fprintf(c.stdout, "devices: %d\n", len(infos))
	for _, in := range infos {
		_, line := c.deviceRow(fromRelay(d, in))
		fmt.Fprintf(c.stdout, "  %s\n", line)
	}
	fmt.Fprintf(c.stdout, "one-time prekeys on the relay: %d\n", counts.PreKeys)
	lastResort := "no last-resort one"
	if counts.KemLastResort {
		lastResort = "and a last-resort one"
	}
	fmt.Fprintf(c.stdout, "post-quantum one-time prekeys on the relay: %d, %s\n", counts.KemPreKeys, lastResort)
	if counts.PreKeys < 10 || counts.KemPreKeys < 10 {
		fmt.Fprintln(c.stderr, `pigeon: few one-time prekeys left; "pigeon recv" uploads more`)
	}
	return nil
}

// askRelay connects as this device, with the dial timeout and the
// explanations of every command, and asks for the account's devices and
// this device's prekey count.
func (c *cli) askRelay(ctx context.Context, opts *client.Options, creds *client.Credentials) ([]client.DeviceInfo, *client.PreKeyCounts, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := dial(ctx, opts)
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close()
	if _, err := conn.Authenticate(ctx, creds, 0); err != nil {
		return nil, nil, relayError("authenticate", err)
	}
	infos, err := conn.ListDevices(ctx)
	if err != nil {
		return nil, nil, relayError("list devices", err)
	}
	counts, err := conn.PreKeyCounts(ctx)
	if err != nil {
		return nil, nil, relayError("prekey status", err)
	}
	_ = conn.Finish(ctx)
	return infos, counts, nil
}

// fromRelay is a device of the relay's list, with its name opened by d.
func fromRelay(d *e2e.Device, in client.DeviceInfo) listedDevice {
	l := listedDevice{id: in.DeviceID, this: in.DeviceID == d.DeviceID(), linked: in.Linked, lastSeen: in.LastSeen}
	if len(in.EncryptedName) > 0 {
		n, err := d.OpenDeviceName(in.EncryptedName)
		l.name, l.unreadable = n, err != nil
	}
	return l
}

// deviceRow describes one device of the account, for -json and for
// people (as "pigeon devices" prints it). This device's name is the one
// given to "pigeon init -name" or "pigeon link -name" when the relay has
// none (a first device registered before RegisterRequest had a name).
func (c *cli) deviceRow(info listedDevice) (deviceJSON, string) {
	name, unreadable := info.name, info.unreadable
	if info.this && name == "" && !unreadable {
		name = c.localName()
	}
	j := deviceJSON{ID: info.id, Name: name, NameUnreadable: unreadable, Linked: info.linked.UTC().Format(time.RFC3339), This: info.this}
	if !info.lastSeen.IsZero() {
		j.LastSeen = info.lastSeen.UTC().Format(time.RFC3339)
	}
	switch {
	case unreadable:
		name = "(unreadable name)"
	case name == "":
		name = "(no name)"
	}
	seen := "never"
	if !info.lastSeen.IsZero() {
		seen = info.lastSeen.Format("2006-01-02")
	}
	mark := ""
	if info.this {
		mark = " (this device)"
	}
	return j, fmt.Sprintf("%d\t%s\tlinked %s\tlast seen %s%s", info.id, name, info.linked.Format("2006-01-02"), seen, mark)
}
