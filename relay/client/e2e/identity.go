package e2e

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"

	"go.mau.fi/libsignal/protocol"
)

// ErrNoOfferedKey means TrustOffered found no refused identity key for
// the contact, or not the one the caller compared.
var ErrNoOfferedKey = errors.New("e2e: no such refused identity key")

// An identity key a contact's bundle or prekey message carried that is
// not the trusted one is refused (ErrIdentityChanged) and kept as the
// contact's offered key (the last one seen), so the user can compare the
// safety number it would make and then accept it (protocol.md: refused
// "until the user has compared safety numbers"):
//
//	offered/<account hex>   the last identity key refused for the account

// offer keeps key as the contact's offered identity key. The caller holds
// the directory lock.
func (d *Device) offer(contact, key []byte) error {
	return writeFile(filepath.Join(d.dir, "offered", addressName(contact)), key)
}

// IdentityKeys returns the contact's trusted identity key (nil if none is
// known yet) and the last other key this device refused for it (nil if
// none since the trusted one was accepted).
func (d *Device) IdentityKeys(contact []byte) (trusted, offered []byte, err error) {
	unlock, err := lockDir(d.dir)
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	if trusted, err = readFile(filepath.Join(d.dir, "identities", addressName(contact))); err != nil {
		return nil, nil, err
	}
	if offered, err = readFile(filepath.Join(d.dir, "offered", addressName(contact))); err != nil {
		return nil, nil, err
	}
	return trusted, offered, nil
}

// SafetyNumberWith is SafetyNumber with the contact identity key given
// (an offered one, to compare before accepting it).
func (d *Device) SafetyNumberWith(contact, key []byte) string {
	return d.safetyNumber(contact, key)
}

// TrustOffered accepts the contact's offered identity key, which must be
// key (the one whose safety number the user compared): it becomes the
// trusted key and the sessions with the contact's devices are forgotten,
// so the next send or prekey message starts new ones. ErrNoOfferedKey if
// the offered key is another one or there is none.
func (d *Device) TrustOffered(contact, key []byte) error {
	unlock, err := lockDir(d.dir)
	if err != nil {
		return err
	}
	defer unlock()
	name := addressName(contact)
	offered, err := readFile(filepath.Join(d.dir, "offered", name))
	if err != nil {
		return err
	}
	if offered == nil || !bytes.Equal(offered, key) {
		return ErrNoOfferedKey
	}
	if err := writeFile(filepath.Join(d.dir, "identities", name), offered); err != nil {
		return err
	}
	devices, err := d.store.GetSubDeviceSessions(context.Background(), name)
	if err != nil {
		return err
	}
	for _, id := range devices {
		if err := d.store.DeleteSession(context.Background(), protocol.NewSignalAddress(name, id)); err != nil {
			return err
		}
	}
	return remove(filepath.Join(d.dir, "offered", name))
}
