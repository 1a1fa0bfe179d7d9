package e2e

import (
	"context"
	"fmt"

	"go.mau.fi/libsignal/util/keyhelper"

	"github.com/pigeonhole/pigeonhole/relay/client"
)

// keepSignedPreKeys is how many signed prekeys RotateSignedPreKey keeps:
// the new one and the ones before it, whose private keys still open
// prekey messages made from bundles fetched before a rotation (and the
// one the relay still has if an upload of the new one failed).
const keepSignedPreKeys = 3

// RotateSignedPreKey makes and stores a new signed prekey under the next
// id, signed by the identity key, deletes all but the newest
// keepSignedPreKeys, and returns the new public part to upload with
// client.Conn.RotateSignedPreKey (protocol.md, "Rotate the signed
// prekey").
func (d *Device) RotateSignedPreKey() (client.SignedPreKey, error) {
	var out client.SignedPreKey
	err := d.updateState(func(s *txStore, st *state) error {
		next := st.SignedPreKeyID + 1
		if next > 0xFFFFFF { // 24-bit ids, as one-time prekeys; 0 is skipped
			next = 1
		}
		spk, err := keyhelper.GenerateSignedPreKey(d.ident, next, ser.SignedPreKeyRecord)
		if err != nil {
			return fmt.Errorf("e2e: signed prekey: %w", err)
		}
		ctx := context.Background()
		if err := s.StoreSignedPreKey(ctx, spk.ID(), spk); err != nil {
			return fmt.Errorf("e2e: %w", err)
		}
		st.SignedPreKeyID = next
		keep := map[uint32]bool{}
		for i, id := 0, next; i < keepSignedPreKeys; i++ {
			keep[id] = true
			if id--; id == 0 {
				id = 0xFFFFFF
			}
		}
		all, err := s.LoadSignedPreKeys(ctx)
		if err != nil {
			return fmt.Errorf("e2e: %w", err)
		}
		for _, r := range all {
			if !keep[r.ID()] {
				if err := s.RemoveSignedPreKey(ctx, r.ID()); err != nil {
					return fmt.Errorf("e2e: %w", err)
				}
			}
		}
		sig := spk.Signature()
		out = client.SignedPreKey{ID: next, PublicKey: spk.KeyPair().PublicKey().Serialize(), Signature: sig[:]}
		return nil
	})
	return out, err
}

// SignedPreKeyIDs returns the ids of the signed prekeys this device
// keeps, in no particular order.
func (d *Device) SignedPreKeyIDs() ([]uint32, error) {
	var ids []uint32
	err := d.update(func(s *txStore) error {
		all, err := s.LoadSignedPreKeys(context.Background())
		if err != nil {
			return fmt.Errorf("e2e: %w", err)
		}
		for _, r := range all {
			ids = append(ids, r.ID())
		}
		return nil
	})
	return ids, err
}
