package main

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"time"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/client/messenger"
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
	m, opts, err := c.openMessenger()
	if err != nil {
		return err
	}
	defer m.Close()
	st := statusJSON{Account: hex.EncodeToString(m.AccountID()), Device: uint32(m.DeviceID()), DeviceName: c.localName(), Relay: opts.Addr}
	l, counts, relayErr := askRelay(ctx, m, opts)
	if relayErr == nil {
		st.Reachable, st.PreKeys = true, &counts.PreKeys
		st.KemPreKeys, st.KemLastResort = &counts.KemPreKeys, &counts.KemLastResort
		for i := range l.Count() {
			j, _ := c.deviceRow(l, i)
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
	fmt.Fprintf(c.stdout, "devices: %d\n", l.Count())
	for i := range l.Count() {
		_, line := c.deviceRow(l, i)
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

// askRelay asks the relay, within the dial timeout of every command and
// with its explanations, for the account's devices and this device's
// prekey counts.
func askRelay(ctx context.Context, m *messenger.Messenger, opts *client.Options) (*messenger.DeviceList, *client.PreKeyCounts, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	l, err := m.Devices(ctx)
	if err != nil {
		return nil, nil, messengerError("list devices", opts, err)
	}
	counts, err := m.PreKeyCounts(ctx)
	if err != nil {
		return nil, nil, messengerError("prekey status", opts, err)
	}
	return l, counts, nil
}

// deviceRow describes the i-th device of l, for -json and for people (as
// "pigeon devices" prints it). This device's name is the one given to
// "pigeon init -name" or "pigeon link -name" when the relay has none (a
// first device registered before RegisterRequest had a name).
func (c *cli) deviceRow(l *messenger.DeviceList, i int) (deviceJSON, string) {
	name, unreadable, this := l.Name(i), l.NameUnreadable(i), l.IsThis(i)
	if this && name == "" && !unreadable {
		name = c.localName()
	}
	linked, lastSeen := time.UnixMilli(l.LinkedMillis(i)), time.Time{}
	if ms := l.LastSeenMillis(i); ms != 0 {
		lastSeen = time.UnixMilli(ms)
	}
	j := deviceJSON{ID: uint32(l.ID(i)), Name: name, NameUnreadable: unreadable, Linked: linked.UTC().Format(time.RFC3339), This: this}
	seen := "never"
	if !lastSeen.IsZero() {
		j.LastSeen = lastSeen.UTC().Format(time.RFC3339)
		seen = lastSeen.Format("2006-01-02")
	}
	switch {
	case unreadable:
		name = "(unreadable name)"
	case name == "":
		name = "(no name)"
	}
	mark := ""
	if this {
		mark = " (this device)"
	}
	return j, fmt.Sprintf("%d\t%s\tlinked %s\tlast seen %s%s", j.ID, name, linked.Format("2006-01-02"), seen, mark)
}
