package messenger

import (
	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
)

// home is where a new device is made, a directory or a KV: Register
// and RegisterStorage, and StartLink and StartLinkStorage, differ only
// in it.
type home struct {
	// exists reports whether the home holds a device already.
	exists func() bool
	// create makes a new account's first device, createLinked a device
	// of the account p names; both with n one-time prekeys.
	create       func(n int) (*e2e.Device, *client.Registration, error)
	createLinked func(p *e2e.Provisioning, n int) (*e2e.Device, *client.Registration, error)
	// undo deletes a device made here that the relay did not take, so
	// the home can be used again.
	undo func()
	// wrap is the Store of a device made here.
	wrap func(*e2e.Device) Store
}

// dirHome is the directory dir, e2e's file layout (DirStore).
func dirHome(dir string) home {
	return home{
		exists: func() bool { _, err := e2e.Open(dir); return err == nil },
		create: func(n int) (*e2e.Device, *client.Registration, error) { return e2e.Create(dir, n) },
		createLinked: func(p *e2e.Provisioning, n int) (*e2e.Device, *client.Registration, error) {
			return e2e.CreateLinked(dir, p, n)
		},
		undo: func() { undoCreate(dir) },
		wrap: func(d *e2e.Device) Store { return newDirStore(d) },
	}
}

// kvHome is the KV kv (KVStore).
func kvHome(kv KV) home {
	return home{
		exists: func() bool { _, err := e2e.OpenStorage(kv); return err == nil },
		create: func(n int) (*e2e.Device, *client.Registration, error) { return e2e.CreateIn(kv, n) },
		createLinked: func(p *e2e.Provisioning, n int) (*e2e.Device, *client.Registration, error) {
			return e2e.CreateLinkedIn(kv, p, n)
		},
		undo: func() { undoCreateKV(kv) },
		wrap: func(d *e2e.Device) Store { return newKVStore(d, kv) },
	}
}
