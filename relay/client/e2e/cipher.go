package e2e

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"go.mau.fi/libsignal/ecc"
	"go.mau.fi/libsignal/keys/identity"
	"go.mau.fi/libsignal/keys/prekey"
	"go.mau.fi/libsignal/protocol"
	"go.mau.fi/libsignal/session"
	"go.mau.fi/libsignal/signalerror"
	"go.mau.fi/libsignal/util/optional"

	"github.com/pigeonhole/pigeonhole/relay/client"
)

// More errors returned by Device methods.
var (
	// ErrDuplicate means an envelope was decrypted before (the relay
	// delivers at least once): ack it and show nothing.
	ErrDuplicate = errors.New("e2e: message already received")
	// ErrIdentityChanged means a contact's identity key is not the one
	// trusted before: they reinstalled, or someone is in the middle.
	ErrIdentityChanged = errors.New("e2e: the contact's identity key changed")
	// ErrNoSession means there is no session with a device to encrypt to.
	ErrNoSession = errors.New("e2e: no session with that device")
	// ErrBadPadding means a decrypted message was not padded as required.
	ErrBadPadding = errors.New("e2e: bad padding")
)

// Ciphertext types on the wire (Envelope.type): Signal's own numbers.
const (
	TypeSignal = protocol.WHISPER_TYPE // a Double Ratchet message
	TypePreKey = protocol.PREKEY_TYPE  // the first message of a session (X3DH)
)

// refuseDowngrade fails with ErrDowngrade when msg, an X3DH initial
// message, would start a new session with a device this device has a
// PQXDH session with. One that belongs to a session already in the
// record (a redelivery) passes, and decrypts as before.
func refuseDowngrade(s *txStore, addr *protocol.SignalAddress, msg *protocol.PreKeySignalMessage) error {
	r, f, err := s.loadSessionFile(addr)
	if err != nil {
		return err
	}
	if f.Handshake == handshakePQXDH && !r.HasSessionState(msg.MessageVersion(), msg.BaseKey().Serialize()) {
		return fmt.Errorf("%w (device %d)", ErrDowngrade, addr.DeviceID())
	}
	return nil
}

// PaddingBlock is the size plaintexts are padded to a multiple of, so the
// ciphertext length tells little about the message.
const PaddingBlock = 160

// pad appends 0x80 and zeros up to the next multiple of PaddingBlock.
func pad(b []byte) []byte {
	n := (len(b)/PaddingBlock + 1) * PaddingBlock
	out := make([]byte, n)
	copy(out, b)
	out[len(b)] = 0x80
	return out
}

func unpad(b []byte) ([]byte, error) {
	for i := len(b) - 1; i >= 0; i-- {
		switch b[i] {
		case 0:
			continue
		case 0x80:
			return b[:i], nil
		}
		break
	}
	return nil, ErrBadPadding
}

func builder(s *txStore, addr *protocol.SignalAddress) *session.Builder {
	return session.NewBuilder(s, s, s, s, addr, ser)
}

// SessionDevices returns the ids of an account's devices that this device
// has sessions with, ascending.
func (d *Device) SessionDevices(account []byte) ([]uint32, error) {
	var ids []uint32
	err := d.update(func(s *txStore) (err error) {
		ids, err = s.GetSubDeviceSessions(context.Background(), addressName(account))
		return err
	})
	slices.Sort(ids)
	return ids, err
}

// StartSessions starts sessions with the named devices of keys (all of
// them if devices is nil) that this device has no session with yet: with
// PQXDH where the fetch claimed a KEM prekey for the device, with X3DH
// where it did not (protocol.md, "PQXDH session start"). The contact's identity key is trusted on
// first use; a different one later fails with ErrIdentityChanged.
func (d *Device) StartSessions(ctx context.Context, keys *client.Keys, devices []uint32) error {
	return d.StartSessionsKEM(ctx, keys, bundleKEM(keys), devices)
}

// StartSessionsKEM is StartSessions with the devices' KEM prekeys, by
// device id: a device with a KEM prekey gets a PQXDH session (protocol.md, "PQXDH session start"),
// one without gets an X3DH session. A KEM prekey that is malformed or
// whose signature does not verify fails with ErrBadKEMPreKey, and no
// session is started with that device.
func (d *Device) StartSessionsKEM(ctx context.Context, keys *client.Keys, kem map[uint32]KEMPreKey, devices []uint32) error {
	var refused []byte // the identity key refused, offered after the transaction
	err := d.updateCtx(ctx, func(s *txStore) error {
		name := addressName(keys.AccountID)
		for _, b := range keys.Devices {
			if devices != nil && !slices.Contains(devices, b.DeviceID) {
				continue
			}
			addr := protocol.NewSignalAddress(name, b.DeviceID)
			if ok, err := s.ContainsSession(ctx, addr); err != nil {
				return err
			} else if ok {
				continue
			}
			bundle, err := toBundle(b)
			if err != nil {
				return fmt.Errorf("e2e: device %d: %w", b.DeviceID, err)
			}
			if k, ok := kem[b.DeviceID]; ok {
				err = d.startPQXDH(ctx, s, addr, bundle, k)
			} else {
				err = builder(s, addr).ProcessBundle(ctx, bundle)
			}
			if err != nil {
				if errors.Is(err, signalerror.ErrUntrustedIdentity) {
					refused = b.IdentityKey
					return fmt.Errorf("%w (device %d)", ErrIdentityChanged, b.DeviceID)
				}
				return fmt.Errorf("e2e: session with device %d: %w", b.DeviceID, err)
			}
		}
		return nil
	})
	if refused != nil {
		if oerr := d.offer(ctx, keys.AccountID, refused); oerr != nil {
			return oerr
		}
	}
	return err
}

func toBundle(b client.DeviceBundle) (*prekey.Bundle, error) {
	key := func(what string, k []byte) (ecc.ECPublicKeyable, error) {
		if len(k) != 33 || k[0] != ecc.DjbType {
			return nil, fmt.Errorf("%s is not a Signal public key", what)
		}
		return ecc.DecodePoint(k, 0)
	}
	ik, err := key("identity key", b.IdentityKey)
	if err != nil {
		return nil, err
	}
	spk, err := key("signed prekey", b.SignedPreKey.PublicKey)
	if err != nil {
		return nil, err
	}
	if len(b.SignedPreKey.Signature) != 64 {
		return nil, errors.New("signed prekey signature is not 64 bytes")
	}
	var sig [64]byte
	copy(sig[:], b.SignedPreKey.Signature)
	var (
		pkID  = optional.NewEmptyUint32()
		pkPub ecc.ECPublicKeyable
	)
	if b.PreKey != nil {
		if pkPub, err = key("one-time prekey", b.PreKey.PublicKey); err != nil {
			return nil, err
		}
		pkID = optional.NewOptionalUint32(b.PreKey.ID)
	}
	return prekey.NewBundle(b.RegistrationID, b.DeviceID, pkID, b.SignedPreKey.ID, pkPub, spk, sig, identity.NewKey(ik)), nil
}

// ForgetDevices deletes the sessions with devices an account no longer has.
func (d *Device) ForgetDevices(account []byte, devices []uint32) error {
	return d.update(func(s *txStore) error {
		for _, id := range devices {
			if err := s.DeleteSession(context.Background(), protocol.NewSignalAddress(addressName(account), id)); err != nil {
				return err
			}
		}
		return nil
	})
}

// Encrypt pads plaintext and encrypts it for each named device of an
// account, returning the per-device ciphertexts of one send.
func (d *Device) Encrypt(ctx context.Context, account []byte, devices []uint32, plaintext []byte) ([]client.DeviceMessage, error) {
	padded := pad(plaintext)
	var out []client.DeviceMessage
	err := d.updateCtx(ctx, func(s *txStore) error {
		out = make([]client.DeviceMessage, 0, len(devices))
		for _, id := range devices {
			addr := protocol.NewSignalAddress(addressName(account), id)
			if ok, err := s.ContainsSession(ctx, addr); err != nil {
				return err
			} else if !ok {
				return fmt.Errorf("%w %d", ErrNoSession, id)
			}
			ct, err := session.NewCipher(builder(s, addr), addr).Encrypt(ctx, padded)
			if err != nil {
				return fmt.Errorf("e2e: encrypt for device %d: %w", id, err)
			}
			typ, content := ct.Type(), ct.Serialize()
			if pk, ok := ct.(*protocol.PreKeySignalMessage); ok {
				if typ, content, err = wrapPQXDH(s, addr, pk); err != nil {
					return err
				}
			}
			out = append(out, client.DeviceMessage{DeviceID: id, Type: typ, Content: content})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Decrypt decrypts an envelope from the relay and removes the padding. A
// message decrypted before returns ErrDuplicate, unless it came from the
// queue and was not Handled yet: then the plaintext kept of it is
// returned again (kept.go).
func (d *Device) Decrypt(ctx context.Context, env *client.Envelope) ([]byte, error) {
	var (
		plain   []byte
		refused []byte // the identity key refused, offered after the transaction
	)
	err := d.updateCtx(ctx, func(s *txStore) (err error) {
		plain, refused, err = d.decrypt(ctx, s, env)
		plain, err = keepOrRecall(s, env, plain, err)
		return err
	})
	if refused != nil {
		if oerr := d.offer(ctx, env.Sender, refused); oerr != nil {
			return nil, oerr
		}
	}
	if err != nil {
		return nil, err
	}
	return unpad(plain)
}

// decrypt is Decrypt in s's transaction, without unpadding. refused is
// the identity key of a prekey message refused because it is not the
// trusted one.
func (d *Device) decrypt(ctx context.Context, s *txStore, env *client.Envelope) (plain, refused []byte, err error) {
	addr := protocol.NewSignalAddress(addressName(env.Sender), env.SenderDevice)
	cipher := session.NewCipher(builder(s, addr), addr)
	switch env.Type {
	case TypePreKey:
		msg, err := protocol.NewPreKeySignalMessageFromBytes(env.Content, ser.PreKeySignalMessage, ser.SignalMessage)
		if err != nil {
			return nil, nil, fmt.Errorf("e2e: malformed prekey message: %w", err)
		}
		if err := refuseDowngrade(s, addr, msg); err != nil {
			return nil, nil, err
		}
		plain, err = cipher.DecryptMessage(ctx, msg)
		if errors.Is(err, signalerror.ErrUntrustedIdentity) && msg.IdentityKey() != nil {
			refused = msg.IdentityKey().Serialize()
		}
		if err != nil {
			return nil, refused, decryptError(err)
		}
		return plain, nil, nil
	case TypePQXDH:
		plain, err = d.decryptPQXDH(ctx, s, addr, env.Content)
		if errors.Is(err, ErrIdentityChanged) {
			// decryptPQXDH refuses before anything else: the message
			// parsed, and its identity key is the one to offer.
			if m, perr := parsePQXDH(env.Content); perr == nil && m.prekey.IdentityKey() != nil {
				refused = m.prekey.IdentityKey().Serialize()
			}
		}
		return plain, refused, err
	case TypeSignal:
		msg, err := protocol.NewSignalMessageFromBytes(env.Content, ser.SignalMessage)
		if err != nil {
			return nil, nil, fmt.Errorf("e2e: malformed message: %w", err)
		}
		plain, err = cipher.Decrypt(ctx, msg)
		if err != nil {
			return nil, nil, decryptError(err)
		}
		return plain, nil, nil
	}
	return nil, nil, fmt.Errorf("e2e: unknown ciphertext type %d", env.Type)
}

func decryptError(err error) error {
	switch {
	case errors.Is(err, signalerror.ErrOldCounter):
		return ErrDuplicate
	case errors.Is(err, signalerror.ErrUntrustedIdentity):
		return ErrIdentityChanged
	}
	return fmt.Errorf("e2e: decrypt: %w", err)
}
