package messenger

import (
	"context"
	"fmt"

	"github.com/pigeonhole/pigeonhole/relay/client"
)

// DeviceList is this account's devices, ascending by id, as the relay
// lists them; names are decrypted here (the relay cannot read them).
type DeviceList struct {
	devs       []client.DeviceInfo
	names      []string
	unreadable []bool
	self       uint32
}

// Count is how many devices the account has.
func (l *DeviceList) Count() int { return len(l.devs) }

// ID is the i-th device's id.
func (l *DeviceList) ID(i int) int64 { return int64(l.devs[i].DeviceID) }

// Name is the i-th device's name: "" when it has none or this device
// cannot open it.
func (l *DeviceList) Name(i int) string { return l.names[i] }

// NameUnreadable reports whether the i-th device has a name this device
// cannot open (Name is then "").
func (l *DeviceList) NameUnreadable(i int) bool { return l.unreadable[i] }

// LinkedMillis is the day the i-th device was linked (Unix milliseconds,
// midnight UTC).
func (l *DeviceList) LinkedMillis(i int) int64 { return l.devs[i].Linked.UnixMilli() }

// LastSeenMillis is the last day the i-th device connected (Unix
// milliseconds, midnight UTC), 0 if never.
func (l *DeviceList) LastSeenMillis(i int) int64 {
	if l.devs[i].LastSeen.IsZero() {
		return 0
	}
	return l.devs[i].LastSeen.UnixMilli()
}

// IsThis reports whether the i-th device is this one.
func (l *DeviceList) IsThis(i int) bool { return l.devs[i].DeviceID == l.self }

// Devices lists this account's devices.
func (m *Messenger) Devices(ctx context.Context) (*DeviceList, error) {
	var infos []client.DeviceInfo
	err := m.conn(ctx, func(c *client.Conn) error {
		var err error
		infos, err = c.ListDevices(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("messenger: list devices: %w", err)
	}
	l := &DeviceList{devs: infos, names: make([]string, len(infos)), unreadable: make([]bool, len(infos)), self: m.store.DeviceID()}
	for i, d := range infos {
		if len(d.EncryptedName) > 0 {
			var err error
			l.names[i], err = m.store.OpenDeviceName(d.EncryptedName)
			l.unreadable[i] = err != nil
		}
	}
	return l, nil
}

// RevokeDevice removes another device of this account (from the primary
// device only: the relay refuses others with NOT_PRIMARY); its
// credentials stop working at once, and this device forgets its session
// with it.
func (m *Messenger) RevokeDevice(ctx context.Context, id int64) error {
	if id <= 0 || id > 1<<32-1 || uint32(id) == m.store.DeviceID() {
		return fmt.Errorf("messenger: cannot revoke device %d", id)
	}
	err := m.conn(ctx, func(c *client.Conn) error { return c.RevokeDevice(ctx, uint32(id)) })
	if err != nil {
		return fmt.Errorf("messenger: revoke: %w", err)
	}
	if err := m.store.ForgetDevices(m.store.AccountID(), []uint32{uint32(id)}); err != nil {
		return fmt.Errorf("messenger: %w", err)
	}
	return nil
}
