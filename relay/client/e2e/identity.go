package e2e

import (
	"bytes"
	"context"
	"errors"

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

// offer keeps key as the contact's offered identity key, in a
// transaction of its own (the one that refused key failed).
func (d *Device) offer(ctx context.Context, contact, key []byte) error {
	return d.updateCtx(ctx, func(s *txStore) error {
		return s.tx.Put(offeredDir+addressName(contact), key)
	})
}

// IdentityKeys returns the contact's trusted identity key (nil if none is
// known yet) and the last other key this device refused for it (nil if
// none since the trusted one was accepted).
func (d *Device) IdentityKeys(contact []byte) (trusted, offered []byte, err error) {
	err = d.update(func(s *txStore) (err error) {
		if trusted, err = s.tx.Get(identitiesDir + addressName(contact)); err != nil {
			return err
		}
		offered, err = s.tx.Get(offeredDir + addressName(contact))
		return err
	})
	if err != nil {
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
	name := addressName(contact)
	return d.update(func(s *txStore) error {
		offered, err := s.tx.Get(offeredDir + name)
		if err != nil {
			return err
		}
		if offered == nil || !bytes.Equal(offered, key) {
			return ErrNoOfferedKey
		}
		if err := s.tx.Put(identitiesDir+name, offered); err != nil {
			return err
		}
		devices, err := s.GetSubDeviceSessions(context.Background(), name)
		if err != nil {
			return err
		}
		for _, id := range devices {
			if err := s.DeleteSession(context.Background(), protocol.NewSignalAddress(name, id)); err != nil {
				return err
			}
		}
		return s.tx.Delete(offeredDir + name)
	})
}
