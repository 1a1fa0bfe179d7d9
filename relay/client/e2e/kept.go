package e2e

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/pigeonhole/pigeonhole/relay/client"
)

// An envelope from the device's queue (Seq != 0) comes again when it was
// decrypted but not acked: the app was killed before it took the
// message, or its handler or its database failed. Its ratchet has moved
// on, so it does not decrypt twice. Decrypt and DecryptGroup therefore
// keep the plaintext of a queued envelope, in the transaction that
// decrypts it, until Handled deletes it, and give it again when the
// same envelope comes again before that:
//
//	kept/<EnvelopeHash, hex>   the padded plaintext
//
// So a message is lost neither by a crash between the decryption and
// the app's own commit nor by a failure there; the app may see it twice
// (at least once), and tells by the message id. An online-only envelope
// (Seq 0) never comes again and is not kept.
const keptDir = "kept/"

// EnvelopeHash names an envelope by what the relay cannot change without
// breaking its decryption: SHA-256 of its sender, sender device, type
// and content. A copy of an envelope that comes again has the same hash.
func EnvelopeHash(env *client.Envelope) [32]byte {
	h := sha256.New()
	var b [8]byte
	binary.BigEndian.PutUint32(b[:4], env.SenderDevice)
	binary.BigEndian.PutUint32(b[4:], env.Type)
	h.Write(env.Sender)
	h.Write(b[:])
	h.Write(env.Content)
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// keptKey is where the plaintext of env is kept.
func keptKey(env *client.Envelope) string {
	k := EnvelopeHash(env)
	return keptDir + hex.EncodeToString(k[:])
}

// keepOrRecall is the end of a decryption of env in s's transaction:
// a plaintext just decrypted from a queued envelope is kept; a duplicate
// of one kept before gives that plaintext back (err nil); anything else
// is returned as it is.
func keepOrRecall(s *txStore, env *client.Envelope, plain []byte, err error) ([]byte, error) {
	if env.Seq == 0 {
		return plain, err
	}
	switch {
	case err == nil:
		if perr := s.tx.Put(keptKey(env), plain); perr != nil {
			return nil, perr
		}
		return plain, nil
	case errors.Is(err, ErrDuplicate):
		kept, gerr := s.tx.Get(keptKey(env))
		if gerr != nil {
			return nil, gerr
		}
		if kept != nil {
			return kept, nil
		}
	}
	return plain, err
}

// Handled deletes the plaintext Decrypt or DecryptGroup kept of env, once
// the app has taken what it says; the next copy of env is then
// ErrDuplicate. Nothing kept (an online-only envelope, or Handled
// before) is not an error.
func (d *Device) Handled(env *client.Envelope) error {
	if env.Seq == 0 {
		return nil
	}
	err := d.update(func(s *txStore) error { return s.tx.Delete(keptKey(env)) })
	if err != nil {
		return fmt.Errorf("e2e: forget a handled message: %w", err)
	}
	return nil
}
