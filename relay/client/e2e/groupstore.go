package e2e

import (
	"context"
	"errors"
	"fmt"

	"go.mau.fi/libsignal/ecc"
	grecord "go.mau.fi/libsignal/groups/state/record"
	"go.mau.fi/libsignal/protocol"
)

// The sender key store, in the same transaction as txStore:
//
//	groups/<group id hex>/<account hex>.<device>   sender key record
//
// This device's own sender key for a group is the record under its own
// address.

func senderKeyKey(n *protocol.SenderKeyName) string {
	return groupsDir + n.GroupID() + "/" + sessionName(n.Sender())
}

// LoadSenderKey returns the sender key record for n, or an empty one.
func (s *txStore) LoadSenderKey(_ context.Context, n *protocol.SenderKeyName) (*grecord.SenderKey, error) {
	b, err := s.tx.Get(senderKeyKey(n))
	if err != nil {
		return nil, err
	}
	if b == nil {
		return grecord.NewSenderKey(ser.SenderKeyRecord, ser.SenderKeyState), nil
	}
	st, err := ser.SenderKeyRecord.Deserialize(b)
	if err != nil {
		return nil, fmt.Errorf("sender key of %s in %s: %w", n.Sender(), n.GroupID(), err)
	}
	// libsignal panics on a signing key it cannot decode; refuse a damaged
	// record instead.
	for _, ks := range st.SenderKeyStates {
		if ks == nil || ks.SenderChainKey == nil || !isPublicKey(ks.SigningKeyPublic) {
			return nil, fmt.Errorf("sender key of %s in %s: %w", n.Sender(), n.GroupID(), errDamagedRecord)
		}
	}
	r, err := grecord.NewSenderKeyFromStruct(st, ser.SenderKeyRecord, ser.SenderKeyState)
	if err != nil {
		return nil, fmt.Errorf("sender key of %s in %s: %w", n.Sender(), n.GroupID(), err)
	}
	return r, nil
}

// StoreSenderKey stores the sender key record for n.
func (s *txStore) StoreSenderKey(_ context.Context, n *protocol.SenderKeyName, r *grecord.SenderKey) error {
	return s.tx.Put(senderKeyKey(n), r.Serialize())
}

// deleteSenderKey forgets the sender key record for n.
func (s *txStore) deleteSenderKey(n *protocol.SenderKeyName) error {
	return s.tx.Delete(senderKeyKey(n))
}

var errDamagedRecord = errors.New("damaged record")

// isPublicKey reports whether k is a serialized Curve25519 public key,
// which ecc.DecodePoint takes without panicking.
func isPublicKey(k []byte) bool { return len(k) == 33 && k[0] == ecc.DjbType }
