package e2e

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"

	"go.mau.fi/libsignal/groups"
	"go.mau.fi/libsignal/protocol"
	"go.mau.fi/libsignal/signalerror"

	"github.com/pigeonhole/pigeonhole/relay/client"
)

// ErrNoSenderKey means a group message's sender key is unknown: the
// sender's distribution message has not been processed, or the sender
// rotated its key and did not send the new one to this device (it was
// removed from the group). GroupEncrypt also returns it when this device
// has no sender key for the group yet: call SenderKeyDistribution first.
var ErrNoSenderKey = errors.New("e2e: no sender key for that device in the group")

// GroupIDSize is the length of a group id in bytes.
const GroupIDSize = 16

// accountIDSize is the length of an account id in bytes.
const accountIDSize = 16

// Group messages are sender-key messages (Signal's SenderKeyMessage): a
// version byte, a protobuf and a 64-byte signature; the AES-CBC
// ciphertext inside is whole blocks.
const minGroupMessage = 1 + 64

// GroupSaltSize is the length of the salt that binds a group id to the
// group's admin.
const GroupSaltSize = 16

// groupIDLabel separates group id hashes from any other use of SHA-256.
const groupIDLabel = "pigeonhole group id v1"

// NewGroupID returns a new group id for a group whose admin is the
// account admin, and the random salt that binds the two: the id is the
// first GroupIDSize bytes of SHA-256(label || admin || salt). The admin
// sends the salt with the group's state so that members can check, with
// GroupIDMatches, that the group is the admin's and nobody else's: only
// the admin's account can be the first to describe a group with that id.
func NewGroupID(admin []byte) (id, salt []byte, err error) {
	if len(admin) != accountIDSize {
		return nil, nil, fmt.Errorf("e2e: account id is %d bytes, want %d", len(admin), accountIDSize)
	}
	salt = make([]byte, GroupSaltSize)
	if _, err := rand.Read(salt); err != nil {
		return nil, nil, fmt.Errorf("e2e: group id: %w", err)
	}
	return groupID(admin, salt), salt, nil
}

// GroupIDMatches reports whether id is the group id NewGroupID made for
// admin with salt.
func GroupIDMatches(id, admin, salt []byte) bool {
	if len(id) != GroupIDSize || len(admin) != accountIDSize || len(salt) != GroupSaltSize {
		return false
	}
	return subtle.ConstantTimeCompare(id, groupID(admin, salt)) == 1
}

func groupID(admin, salt []byte) []byte {
	h := sha256.New()
	h.Write([]byte(groupIDLabel))
	h.Write(admin)
	h.Write(salt)
	return h.Sum(nil)[:GroupIDSize]
}

// senderKeyName is the libsignal name of the sender key of (account,
// deviceID) in a group: the group id in hex and the sender's address.
func senderKeyName(groupID, account []byte, deviceID uint32) (*protocol.SenderKeyName, error) {
	if len(groupID) != GroupIDSize {
		return nil, fmt.Errorf("e2e: group id is %d bytes, want %d", len(groupID), GroupIDSize)
	}
	if len(account) != accountIDSize {
		return nil, fmt.Errorf("e2e: account id is %d bytes, want %d", len(account), accountIDSize)
	}
	addr := protocol.NewSignalAddress(addressName(account), deviceID)
	return protocol.NewSenderKeyName(hex.EncodeToString(groupID), addr), nil
}

// ownKeyName is the name of this device's own sender key in a group.
func (d *Device) ownKeyName(groupID []byte) (*protocol.SenderKeyName, error) {
	acct := d.AccountID()
	if len(acct) != accountIDSize {
		return nil, ErrNotRegistered
	}
	return senderKeyName(groupID, acct, d.DeviceID())
}

// isSelf reports whether (account, deviceID) is this device.
func (d *Device) isSelf(account []byte, deviceID uint32) bool {
	return deviceID == d.DeviceID() && bytes.Equal(account, d.AccountID())
}

func groupBuilder(s *txStore) *groups.SessionBuilder {
	return groups.NewGroupSessionBuilder(s, ser)
}

// SenderKeyDistribution returns this device's sender-key distribution
// message for the group, creating the sender key on first use. Send it
// to every member device over the pairwise sessions (as end-to-end
// content) so they can decrypt this device's group messages; they call
// ProcessSenderKeyDistribution with it. ErrNotRegistered before the
// device has an account.
func (d *Device) SenderKeyDistribution(ctx context.Context, groupID []byte) ([]byte, error) {
	name, err := d.ownKeyName(groupID)
	if err != nil {
		return nil, err
	}
	var out []byte
	err = d.updateCtx(ctx, func(s *txStore) error {
		msg, err := groupBuilder(s).Create(ctx, name)
		if err != nil {
			return fmt.Errorf("e2e: sender key: %w", err)
		}
		out = msg.Serialize()
		return nil
	})
	return out, err
}

// ProcessSenderKeyDistribution stores the sender key of another device
// (account, deviceID) for the group, from its distribution message. The
// message must have arrived inside a pairwise-encrypted message from
// that device, which authenticates it. A distribution of a key already
// stored changes nothing, so a repeated or stale one cannot rewind the
// key and let old group messages be replayed.
func (d *Device) ProcessSenderKeyDistribution(ctx context.Context, groupID, account []byte, deviceID uint32, msg []byte) error {
	name, err := senderKeyName(groupID, account, deviceID)
	if err != nil {
		return err
	}
	if d.isSelf(account, deviceID) {
		return errors.New("e2e: a sender key distribution from this device itself")
	}
	m, err := parseDistribution(msg)
	if err != nil {
		return err
	}
	return d.updateCtx(ctx, func(s *txStore) error {
		rec, err := s.LoadSenderKey(ctx, name)
		if err != nil {
			return fmt.Errorf("e2e: %w", err)
		}
		if st, err := rec.GetSenderKeyStateByID(m.ID()); err == nil &&
			bytes.Equal(st.SigningKey().PublicKey().Serialize(), m.SignatureKey().Serialize()) {
			return nil
		}
		rec.AddSenderKeyState(m.ID(), m.Iteration(), m.ChainKey(), m.SignatureKey())
		if err := s.StoreSenderKey(ctx, name, rec); err != nil {
			return fmt.Errorf("e2e: store sender key: %w", err)
		}
		return nil
	})
}

// parseDistribution decodes a sender key distribution message, checking
// what libsignal would panic on (an empty message, a missing or short
// signing key).
func parseDistribution(b []byte) (*protocol.SenderKeyDistributionMessage, error) {
	if len(b) < 1 {
		return nil, errors.New("e2e: malformed sender key distribution: empty")
	}
	st, err := ser.SenderKeyDistributionMessage.Deserialize(b)
	if err != nil {
		return nil, fmt.Errorf("e2e: malformed sender key distribution: %w", err)
	}
	if !isPublicKey(st.SigningKey) || len(st.ChainKey) != 32 {
		return nil, errors.New("e2e: malformed sender key distribution: bad keys")
	}
	m, err := protocol.NewSenderKeyDistributionMessageFromStruct(st, ser.SenderKeyDistributionMessage)
	if err != nil {
		return nil, fmt.Errorf("e2e: malformed sender key distribution: %w", err)
	}
	return m, nil
}

// GroupEncrypt pads plaintext like pairwise messages and encrypts it once
// for the group with this device's sender key; the same ciphertext goes
// to every member device. ErrNoSenderKey if SenderKeyDistribution has
// not made the key yet (or RotateSenderKey discarded it).
func (d *Device) GroupEncrypt(ctx context.Context, groupID, plaintext []byte) ([]byte, error) {
	name, err := d.ownKeyName(groupID)
	if err != nil {
		return nil, err
	}
	var out []byte
	err = d.updateCtx(ctx, func(s *txStore) error {
		rec, err := s.LoadSenderKey(ctx, name)
		if err != nil {
			return fmt.Errorf("e2e: %w", err)
		}
		if rec.IsEmpty() {
			return fmt.Errorf("%w: this device has none yet (call SenderKeyDistribution)", ErrNoSenderKey)
		}
		ct, err := groups.NewGroupCipher(groupBuilder(s), name, s).Encrypt(ctx, pad(plaintext))
		if err != nil {
			return fmt.Errorf("e2e: group encrypt: %w", err)
		}
		out = ct.SignedSerialize()
		return nil
	})
	return out, err
}

// GroupDecrypt decrypts a group message from (account, deviceID) and
// removes the padding. ErrNoSenderKey if that device's key is unknown;
// ErrDuplicate for a message decrypted before.
func (d *Device) GroupDecrypt(ctx context.Context, groupID, account []byte, deviceID uint32, ciphertext []byte) ([]byte, error) {
	return d.groupDecrypt(ctx, groupID, account, deviceID, ciphertext, nil)
}

// groupDecrypt is GroupDecrypt that keeps the plaintext of env, the
// queued envelope the ciphertext came in (nil: none), until Handled.
func (d *Device) groupDecrypt(ctx context.Context, groupID, account []byte, deviceID uint32, ciphertext []byte, env *client.Envelope) ([]byte, error) {
	name, err := senderKeyName(groupID, account, deviceID)
	if err != nil {
		return nil, err
	}
	if d.isSelf(account, deviceID) {
		return nil, errors.New("e2e: a group message from this device itself")
	}
	msg, err := parseGroupMessage(ciphertext)
	if err != nil {
		return nil, err
	}
	var plain []byte
	err = d.updateCtx(ctx, func(s *txStore) (err error) {
		plain, err = groups.NewGroupCipher(groupBuilder(s), name, s).Decrypt(ctx, msg)
		if err != nil {
			err = groupDecryptError(err)
		}
		if env != nil {
			plain, err = keepOrRecall(s, env, plain, err)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return unpad(plain)
}

// parseGroupMessage decodes a sender key message. libsignal's AES-CBC
// panics on a ciphertext that is not whole blocks (after the signature
// check, so only a member could send one); refuse it here.
func parseGroupMessage(b []byte) (*protocol.SenderKeyMessage, error) {
	if len(b) < minGroupMessage {
		return nil, errors.New("e2e: malformed group message: too short")
	}
	st, err := ser.SenderKeyMessage.Deserialize(b)
	if err != nil {
		return nil, fmt.Errorf("e2e: malformed group message: %w", err)
	}
	if n := len(st.CipherText); n == 0 || n%aes.BlockSize != 0 {
		return nil, errors.New("e2e: malformed group message: ciphertext is not whole blocks")
	}
	m, err := protocol.NewSenderKeyMessageFromStruct(st, ser.SenderKeyMessage)
	if err != nil {
		return nil, fmt.Errorf("e2e: malformed group message: %w", err)
	}
	return m, nil
}

func groupDecryptError(err error) error {
	switch {
	case errors.Is(err, signalerror.ErrOldCounter):
		return ErrDuplicate
	case errors.Is(err, signalerror.ErrNoSenderKeyForUser),
		errors.Is(err, signalerror.ErrNoSenderKeyStateForID),
		errors.Is(err, signalerror.ErrNoSenderKeyStatesInRecord):
		return fmt.Errorf("%w (%w)", ErrNoSenderKey, err)
	}
	return fmt.Errorf("e2e: group decrypt: %w", err)
}

// RotateSenderKey discards this device's sender key for the group (after
// a member is removed), so the next SenderKeyDistribution makes a new
// one, which removed members never get. Send it to the remaining member
// devices before the next GroupEncrypt.
func (d *Device) RotateSenderKey(ctx context.Context, groupID []byte) error {
	name, err := d.ownKeyName(groupID)
	if err != nil {
		return err
	}
	return d.updateCtx(ctx, func(s *txStore) error {
		if err := s.deleteSenderKey(name); err != nil {
			return fmt.Errorf("e2e: rotate sender key: %w", err)
		}
		return nil
	})
}

// ForgetSenderKeys discards the sender keys of every device of account in
// the group (after it was removed from the group), so nothing it sends
// under them decrypts here any more.
func (d *Device) ForgetSenderKeys(groupID, account []byte) error {
	if _, err := senderKeyName(groupID, account, 0); err != nil {
		return err
	}
	return d.update(func(s *txStore) error {
		if err := s.deleteAll(groupsDir + hex.EncodeToString(groupID) + "/" + addressName(account) + "."); err != nil {
			return fmt.Errorf("e2e: forget sender keys: %w", err)
		}
		return nil
	})
}

// LeaveGroup discards every sender key of the group, this device's own
// included (after this account was removed from it or left it).
func (d *Device) LeaveGroup(groupID []byte) error {
	if len(groupID) != GroupIDSize {
		return fmt.Errorf("e2e: group id is %d bytes, want %d", len(groupID), GroupIDSize)
	}
	return d.update(func(s *txStore) error {
		if err := s.deleteAll(groupsDir + hex.EncodeToString(groupID) + "/"); err != nil {
			return fmt.Errorf("e2e: leave group: %w", err)
		}
		return nil
	})
}
