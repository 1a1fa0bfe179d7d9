package e2e

import (
	"bytes"
	"context"
	"encoding/hex"
	"strconv"
	"strings"

	"go.mau.fi/libsignal/keys/identity"
	"go.mau.fi/libsignal/protocol"
	"go.mau.fi/libsignal/serialize"
	"go.mau.fi/libsignal/state/record"
)

var ser = serialize.NewProtoBufSerializer()

// txStore is libsignal's session, prekey, signed prekey and identity
// store on one Storage transaction (the keys are listed at Storage). It
// keeps nothing in memory but the device's own identity, so another
// process sharing the storage sees every change once the transaction
// commits. A txStore lives as long as its transaction.
type txStore struct {
	tx    Txn
	ident *identity.KeyPair
	regID uint32
}

// Storage keys (storage.go).
const (
	stateKey      = "device.json"
	sessionsDir   = "sessions/"
	preKeysDir    = "prekeys/"
	signedDir     = "signed/"
	kemPreKeysDir = "kemprekeys/"
	identitiesDir = "identities/"
	offeredDir    = "offered/"
	groupsDir     = "groups/"
)

func sessionName(a *protocol.SignalAddress) string {
	return a.Name() + "." + strconv.FormatUint(uint64(a.DeviceID()), 10)
}

func sessionKey(a *protocol.SignalAddress) string { return sessionsDir + sessionName(a) }

func idFile(id uint32) string { return strconv.FormatUint(uint64(id), 10) }

// GetIdentityKeyPair returns this device's identity key pair.
func (s *txStore) GetIdentityKeyPair() *identity.KeyPair { return s.ident }

// GetLocalRegistrationID returns this device's registration id.
func (s *txStore) GetLocalRegistrationID() uint32 { return s.regID }

// SaveIdentity remembers a contact's identity key.
func (s *txStore) SaveIdentity(_ context.Context, a *protocol.SignalAddress, k *identity.Key) error {
	return s.tx.Put(identitiesDir+a.Name(), k.Serialize())
}

// IsTrustedIdentity trusts a contact's first identity key and only that
// one afterwards.
func (s *txStore) IsTrustedIdentity(_ context.Context, a *protocol.SignalAddress, k *identity.Key) (bool, error) {
	known, err := s.tx.Get(identitiesDir + a.Name())
	if err != nil || known == nil {
		return err == nil, err
	}
	return bytes.Equal(known, k.Serialize()), nil
}

// LoadPreKey returns a one-time prekey record, or nil.
func (s *txStore) LoadPreKey(_ context.Context, id uint32) (*record.PreKey, error) {
	b, err := s.tx.Get(preKeysDir + idFile(id))
	if err != nil || b == nil {
		return nil, err
	}
	return record.NewPreKeyFromBytes(b, ser.PreKeyRecord)
}

// StorePreKey stores a one-time prekey record.
func (s *txStore) StorePreKey(_ context.Context, id uint32, r *record.PreKey) error {
	return s.tx.Put(preKeysDir+idFile(id), r.Serialize())
}

// ContainsPreKey reports whether a one-time prekey is stored.
func (s *txStore) ContainsPreKey(_ context.Context, id uint32) (bool, error) {
	return s.exists(preKeysDir + idFile(id))
}

// RemovePreKey deletes a used one-time prekey.
func (s *txStore) RemovePreKey(_ context.Context, id uint32) error {
	return s.tx.Delete(preKeysDir + idFile(id))
}

// LoadSignedPreKey returns a signed prekey record, or nil.
func (s *txStore) LoadSignedPreKey(_ context.Context, id uint32) (*record.SignedPreKey, error) {
	b, err := s.tx.Get(signedDir + idFile(id))
	if err != nil || b == nil {
		return nil, err
	}
	return record.NewSignedPreKeyFromBytes(b, ser.SignedPreKeyRecord)
}

// LoadSignedPreKeys returns every signed prekey record.
func (s *txStore) LoadSignedPreKeys(ctx context.Context) ([]*record.SignedPreKey, error) {
	keys, err := s.tx.List(signedDir)
	if err != nil {
		return nil, err
	}
	var out []*record.SignedPreKey
	for _, k := range keys {
		id, err := strconv.ParseUint(strings.TrimPrefix(k, signedDir), 10, 32)
		if err != nil {
			continue
		}
		r, err := s.LoadSignedPreKey(ctx, uint32(id))
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// StoreSignedPreKey stores a signed prekey record.
func (s *txStore) StoreSignedPreKey(_ context.Context, id uint32, r *record.SignedPreKey) error {
	return s.tx.Put(signedDir+idFile(id), r.Serialize())
}

// ContainsSignedPreKey reports whether a signed prekey is stored.
func (s *txStore) ContainsSignedPreKey(_ context.Context, id uint32) (bool, error) {
	return s.exists(signedDir + idFile(id))
}

// RemoveSignedPreKey deletes a signed prekey.
func (s *txStore) RemoveSignedPreKey(_ context.Context, id uint32) error {
	return s.tx.Delete(signedDir + idFile(id))
}

// LoadSession returns the session with a, or a fresh empty one.
func (s *txStore) LoadSession(_ context.Context, a *protocol.SignalAddress) (*record.Session, error) {
	r, _, err := s.loadSessionFile(a)
	return r, err
}

// GetSubDeviceSessions returns the device ids of an account with a
// session.
func (s *txStore) GetSubDeviceSessions(_ context.Context, name string) ([]uint32, error) {
	keys, err := s.tx.List(sessionsDir + name + ".")
	if err != nil {
		return nil, err
	}
	var out []uint32
	for _, k := range keys {
		n, dev, ok := strings.Cut(strings.TrimPrefix(k, sessionsDir), ".")
		if !ok || n != name {
			continue
		}
		if id, err := strconv.ParseUint(dev, 10, 32); err == nil {
			out = append(out, uint32(id))
		}
	}
	return out, nil
}

// StoreSession stores the session with a, keeping what the session file
// holds beside libsignal's record (sessionfile.go).
func (s *txStore) StoreSession(_ context.Context, a *protocol.SignalAddress, r *record.Session) error {
	_, f, err := s.loadSessionFile(a)
	if err != nil {
		return err
	}
	return s.storeSessionFile(a, r, f)
}

// ContainsSession reports whether there is a session with a.
func (s *txStore) ContainsSession(_ context.Context, a *protocol.SignalAddress) (bool, error) {
	return s.exists(sessionKey(a))
}

// DeleteSession forgets the session with a.
func (s *txStore) DeleteSession(_ context.Context, a *protocol.SignalAddress) error {
	return s.tx.Delete(sessionKey(a))
}

// DeleteAllSessions forgets every session.
func (s *txStore) DeleteAllSessions(context.Context) error {
	return s.deleteAll(sessionsDir)
}

func (s *txStore) exists(key string) (bool, error) {
	b, err := s.tx.Get(key)
	return b != nil, err
}

// deleteAll deletes every key under prefix.
func (s *txStore) deleteAll(prefix string) error {
	keys, err := s.tx.List(prefix)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := s.tx.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// addressName is the Signal address name of an account: its id in hex.
func addressName(account []byte) string { return hex.EncodeToString(account) }
