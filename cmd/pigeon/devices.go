package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/spec"
)

// revokeCommand is the subcommand of "pigeon devices" that removes a
// device (the command table lists it for completion).
const revokeCommand = "revoke"

// deviceJSON is one line of "pigeon devices -json". The field names are
// stable and documented in UX.md.
type deviceJSON struct {
	ID   uint32 `json:"id"`
	Name string `json:"name"` // "" when it has none or it cannot be read
	// NameUnreadable is true when the device has a name this device
	// cannot decrypt.
	NameUnreadable bool `json:"name_unreadable,omitempty"`
	// Linked and LastSeen are RFC 3339 (UTC); LastSeen is left out when
	// the relay has never seen the device.
	Linked   string `json:"linked"`
	LastSeen string `json:"last_seen,omitempty"`
	// This is true for the device running the command.
	This bool `json:"this"`
}

// devicesFlags declares the flags of "pigeon devices".
func devicesFlags(fs *flag.FlagSet, asJSON *bool) { jsonFlag(fs, asJSON) }

// devices lists the account's devices, or revokes one.
func (c *cli) devices(ctx context.Context, args []string) error {
	fs := c.flagSet("devices")
	var asJSON bool
	devicesFlags(fs, &asJSON)
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	args = fs.Args()
	revoke := uint32(0)
	switch {
	case len(args) == 0:
	case len(args) == 2 && args[0] == revokeCommand:
		id, err := strconv.ParseUint(args[1], 10, 32)
		if err != nil || id == 0 {
			return usagef("pigeon devices revoke ID", "%q is not a device id", args[1])
		}
		revoke = uint32(id)
	default:
		return usagef("pigeon devices [-json] | pigeon devices revoke ID", "unknown devices command")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	m, opts, err := c.openMessenger()
	if err != nil {
		return err
	}
	defer m.Close()
	if revoke != 0 {
		if int64(revoke) == m.DeviceID() {
			if revoke == 1 {
				return failf("", "this is the primary device; it cannot be revoked")
			}
			return failf("revoke it from the primary device", "this is the device you are using")
		}
		err := m.RevokeDevice(ctx, int64(revoke))
		var re *client.Error
		if errors.As(err, &re) && spec.Code(re.Code) == spec.CodeNotPrimary {
			return failf("revoke devices from the primary device (device 1)", "the relay said NOT_PRIMARY: %s", re.Message)
		}
		if err != nil {
			return messengerError("revoke", opts, err)
		}
		fmt.Fprintf(c.stderr, "pigeon: revoked device %d; it can no longer connect\n", revoke)
		return nil
	}
	l, err := m.Devices(ctx)
	if err != nil {
		return messengerError("list devices", opts, err)
	}
	for i := range l.Count() {
		j, line := c.deviceRow(l, i)
		if asJSON {
			emit(c.stdout, j)
		} else {
			fmt.Fprintln(c.stdout, line)
		}
	}
	return nil
}
