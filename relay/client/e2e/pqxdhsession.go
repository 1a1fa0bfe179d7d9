package e2e

import (
	"bytes"
	"context"
	"crypto/mlkem"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"go.mau.fi/libsignal/ecc"
	"go.mau.fi/libsignal/keys/prekey"
	"go.mau.fi/libsignal/protocol"
	"go.mau.fi/libsignal/session"
	"go.mau.fi/libsignal/signalerror"
	"go.mau.fi/libsignal/state/record"
	"go.mau.fi/libsignal/util/medium"
)

// ErrDowngrade means a device that this device has a PQXDH session with
// sent an X3DH initial message: a session without a KEM secret, which is
// refused rather than silently replacing the PQXDH one.
var ErrDowngrade = errors.New("e2e: X3DH initial message on a PQXDH session (downgrade refused)")

// startPQXDH starts a PQXDH session with the device of bundle b at addr,
// whose KEM prekey is k. It is libsignal's session.Builder.ProcessBundle
// (session/Session.go in go.mau.fi/libsignal v0.2.1) step by step, with
// the key agreement replaced by PQXDH (specification section 3.3) and
// the KEM part of the initial message kept in the session file. It runs in
// s's transaction.
func (d *Device) startPQXDH(ctx context.Context, s *txStore, addr *protocol.SignalAddress, b *prekey.Bundle, k KEMPreKey) error {
	trusted, err := s.IsTrustedIdentity(ctx, addr, b.IdentityKey())
	if err != nil {
		return err
	}
	if !trusted {
		return signalerror.ErrUntrustedIdentity
	}
	ik := b.IdentityKey().PublicKey()
	if !ecc.VerifySignature(ik, b.SignedPreKey().Serialize(), b.SignedPreKeySignature()) {
		return signalerror.ErrInvalidSignature
	}
	ek, err := verifyKEMPreKey(ik, k)
	if err != nil {
		return err
	}
	ss, ct := ek.Encapsulate()
	defer clear(ss)
	base, err := ecc.GenerateKeyPair()
	if err != nil {
		return err
	}
	keys, err := initiatorKeys(initiatorParams{
		identity:  d.ident.PrivateKey(),
		base:      base.PrivateKey(),
		theirID:   ik,
		signed:    b.SignedPreKey(),
		oneTime:   b.PreKey(),
		kemSecret: ss,
	})
	if err != nil {
		return err
	}
	r, f, err := s.loadSessionFile(addr)
	if err != nil {
		return err
	}
	if !r.IsFresh() {
		r.ArchiveCurrentState()
	}
	// From here as in ProcessBundle: a fresh sending ratchet key, the
	// first sending chain from the root key, and the unacknowledged
	// prekey message that libsignal's Cipher.Encrypt turns into the
	// PreKeySignalMessage inside every TypePQXDH message until Bob
	// answers.
	ratchet, err := ecc.GenerateKeyPair()
	if err != nil {
		return err
	}
	sending, err := keys.RootKey.CreateChain(b.SignedPreKey(), ratchet)
	if err != nil {
		return err
	}
	st := r.SessionState()
	st.SetVersion(protocol.CurrentVersion)
	st.SetRemoteIdentityKey(b.IdentityKey())
	st.SetLocalIdentityKey(d.ident.PublicKey())
	st.AddReceiverChain(b.SignedPreKey(), keys.ChainKey.Current())
	st.SetSenderChain(ratchet, sending.ChainKey)
	st.SetRootKey(sending.RootKey)
	st.SetUnacknowledgedPreKeyMessage(b.PreKeyID(), b.SignedPreKeyID(), base.PublicKey())
	st.SetLocalRegistrationID(s.regID)
	st.SetRemoteRegistrationID(b.RegistrationID())
	st.SetSenderBaseKey(base.PublicKey().Serialize())
	f.Handshake = handshakePQXDH
	f.Pending = append(f.Pending, pendingKEM{
		BaseKey:    base.PublicKey().Serialize(),
		KEMPreKey:  k.ID,
		Ciphertext: append([]byte{KEMKeyType}, ct...),
	})
	if err := s.storeSessionFile(addr, r, f); err != nil {
		return err
	}
	return s.SaveIdentity(ctx, addr, b.IdentityKey())
}

// wrapPQXDH turns the PreKeySignalMessage that libsignal made on the
// session with addr into a TypePQXDH message if that session was started
// with PQXDH; an X3DH session's goes out as TypePreKey. A PQXDH session
// whose KEM part is missing is an error, never an X3DH message.
func wrapPQXDH(s *txStore, addr *protocol.SignalAddress, pk *protocol.PreKeySignalMessage) (uint32, []byte, error) {
	_, f, err := s.loadSessionFile(addr)
	if err != nil {
		return 0, nil, err
	}
	if f.Handshake != handshakePQXDH {
		return TypePreKey, pk.Serialize(), nil
	}
	p := f.pending(pk.BaseKey().Serialize())
	if p == nil {
		return 0, nil, fmt.Errorf("e2e: PQXDH session with device %d has lost its KEM ciphertext", addr.DeviceID())
	}
	m := &pqxdhMessage{kemPreKeyID: p.KEMPreKey, ciphertext: p.Ciphertext, prekey: pk}
	return TypePQXDH, m.marshal(), nil
}

// lastResortTag names one key agreement on a last-resort KEM prekey:
// SHA-256 of the signed prekey id (4 bytes, big-endian) and the base key,
// the combination libsignal's KyberPreKeyStore.mark_kyber_pre_key_used
// checks (rust/protocol/src/storage/traits.rs).
func lastResortTag(signedPreKeyID uint32, baseKey []byte) []byte {
	h := sha256.New()
	h.Write(binary.BigEndian.AppendUint32(nil, signedPreKeyID))
	h.Write(baseKey)
	return h.Sum(nil)
}

// decryptPQXDH decrypts a TypePQXDH message from addr: it builds the
// session with PQXDH (specification section 3.4) unless one with the
// message's base key exists already (a second initial message before
// this device answered, or a redelivery), and decrypts the embedded
// message on it. It is libsignal's Cipher.DecryptMessage and
// Builder.processV3 step by step with the key agreement replaced. Only
// when the message decrypts are the session stored and the one-time
// prekeys deleted. It runs in s's transaction.
func (d *Device) decryptPQXDH(ctx context.Context, s *txStore, addr *protocol.SignalAddress, content []byte) ([]byte, error) {
	m, err := parsePQXDH(content)
	if err != nil {
		return nil, err
	}
	msg := m.prekey
	if trusted, err := s.IsTrustedIdentity(ctx, addr, msg.IdentityKey()); err != nil {
		return nil, err
	} else if !trusted {
		return nil, ErrIdentityChanged
	}
	r, f, err := s.loadSessionFile(addr)
	if err != nil {
		return nil, err
	}
	var used func() error // deletes what the new session used up
	if !r.HasSessionState(msg.MessageVersion(), msg.BaseKey().Serialize()) {
		if used, err = d.acceptPQXDH(ctx, s, r, m); err != nil {
			return nil, err
		}
	}
	plain, _, err := session.NewCipher(builder(s, addr), addr).DecryptWithRecord(ctx, r, msg.WhisperMessage())
	if err != nil {
		return nil, decryptError(err)
	}
	if err := s.SaveIdentity(ctx, addr, msg.IdentityKey()); err != nil {
		return nil, err
	}
	f.Handshake = handshakePQXDH
	if err := s.storeSessionFile(addr, r, f); err != nil {
		return nil, err
	}
	if used != nil {
		if err := used(); err != nil {
			return nil, err
		}
	}
	return plain, nil
}

// acceptPQXDH runs Bob's side of the key agreement for m and makes the
// new session the current state of r. It returns what deletes the
// prekeys it used, to run once the message has decrypted.
func (d *Device) acceptPQXDH(ctx context.Context, s *txStore, r *record.Session, m *pqxdhMessage) (func() error, error) {
	msg := m.prekey
	spk, err := s.LoadSignedPreKey(ctx, msg.SignedPreKeyID())
	if err != nil {
		return nil, err
	}
	if spk == nil {
		return nil, fmt.Errorf("%w with ID %d", signalerror.ErrNoSignedPreKey, msg.SignedPreKeyID())
	}
	var oneTime ecc.ECPrivateKeyable
	usesOneTime := !msg.PreKeyID().IsEmpty && msg.PreKeyID().Value != medium.MaxValue
	if !msg.PreKeyID().IsEmpty {
		otk, err := s.LoadPreKey(ctx, msg.PreKeyID().Value)
		if err != nil {
			return nil, err
		}
		if otk == nil {
			return nil, fmt.Errorf("%w with ID %d", signalerror.ErrNoOneTimeKeyFound, msg.PreKeyID().Value)
		}
		oneTime = otk.KeyPair().PrivateKey()
	}
	kr, err := s.loadKEM(m.kemPreKeyID)
	if err != nil {
		return nil, err
	}
	if kr == nil {
		return nil, fmt.Errorf("%w: KEM prekey %d", ErrKEMPreKeyUsed, m.kemPreKeyID)
	}
	tag := lastResortTag(msg.SignedPreKeyID(), msg.BaseKey().Serialize())
	if kr.LastResort && contains(kr.Used, tag) {
		return nil, fmt.Errorf("%w %d", ErrKEMReplay, m.kemPreKeyID)
	}
	dk, err := mlkem.NewDecapsulationKey1024(kr.Seed)
	if err != nil {
		return nil, fmt.Errorf("%w: KEM prekey %d: %v", ErrDamaged, m.kemPreKeyID, err)
	}
	// ML-KEM rejects implicitly: a changed ciphertext decapsulates to an
	// unrelated secret, and the embedded message's MAC then fails.
	ss, err := dk.Decapsulate(m.ciphertext[1:])
	if err != nil {
		return nil, fmt.Errorf("e2e: PQXDH: %w", err)
	}
	defer clear(ss)
	keys, err := responderKeys(responderParams{
		identity:  d.ident.PrivateKey(),
		signed:    spk.KeyPair().PrivateKey(),
		oneTime:   oneTime,
		theirID:   msg.IdentityKey().PublicKey(),
		base:      msg.BaseKey(),
		kemSecret: ss,
	})
	if err != nil {
		return nil, err
	}
	if !r.IsFresh() {
		r.ArchiveCurrentState()
	}
	// As in processV3: Bob's first sending chain is the PQXDH chain key,
	// with the signed prekey as his ratchet key.
	st := r.SessionState()
	st.SetVersion(protocol.CurrentVersion)
	st.SetRemoteIdentityKey(msg.IdentityKey())
	st.SetLocalIdentityKey(d.ident.PublicKey())
	st.SetSenderChain(spk.KeyPair(), keys.ChainKey)
	st.SetRootKey(keys.RootKey)
	st.SetLocalRegistrationID(s.regID)
	st.SetRemoteRegistrationID(msg.RegistrationID())
	st.SetSenderBaseKey(msg.BaseKey().Serialize())
	return func() error {
		if usesOneTime {
			if err := s.RemovePreKey(ctx, msg.PreKeyID().Value); err != nil {
				return err
			}
		}
		if !kr.LastResort {
			return s.removeKEM(m.kemPreKeyID)
		}
		kr.Used = append(kr.Used, tag)
		return s.storeKEM(m.kemPreKeyID, kr)
	}, nil
}

// contains reports whether tags holds tag.
func contains(tags [][]byte, tag []byte) bool {
	return slices.ContainsFunc(tags, func(t []byte) bool { return bytes.Equal(t, tag) })
}
