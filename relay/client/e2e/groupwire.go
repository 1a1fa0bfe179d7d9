package e2e

import (
	"context"
	"errors"

	"go.mau.fi/libsignal/protocol"

	"github.com/pigeonhole/pigeonhole/relay/client"
)

// TypeGroup is the DeviceMessage (and Envelope) type of a group message:
// its content is the group id (GroupIDSize bytes) followed by the
// sender-key message GroupEncrypt made. Every member device gets the same
// content. protocol.md, "Groups", is normative.
const TypeGroup = protocol.SENDERKEY_TYPE

// GroupContent returns the DeviceMessage content of a group message: the
// group id, then the GroupEncrypt ciphertext.
func GroupContent(groupID, ciphertext []byte) []byte {
	b := make([]byte, 0, len(groupID)+len(ciphertext))
	return append(append(b, groupID...), ciphertext...)
}

// DecryptGroup decrypts an envelope of TypeGroup from the device that the
// relay names as its sender, and returns the group id and the plaintext.
// Errors are GroupDecrypt's: ErrNoSenderKey when that device's sender
// key for the group is unknown (this device was never given it, or was
// removed from the group), ErrDuplicate for a message seen before (but
// the kept plaintext of a queued envelope not Handled yet, as Decrypt).
func (d *Device) DecryptGroup(ctx context.Context, env *client.Envelope) (groupID, plain []byte, err error) {
	if env.Type != TypeGroup {
		return nil, nil, errors.New("e2e: not a group message")
	}
	if len(env.Content) < GroupIDSize+minGroupMessage {
		return nil, nil, errors.New("e2e: malformed group message: too short")
	}
	groupID = env.Content[:GroupIDSize:GroupIDSize]
	plain, err = d.groupDecrypt(ctx, groupID, env.Sender, env.SenderDevice, env.Content[GroupIDSize:], env)
	if err != nil {
		return nil, nil, err
	}
	return groupID, plain, nil
}
