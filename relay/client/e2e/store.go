package e2e

import (
	"bytes"
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"go.mau.fi/libsignal/keys/identity"
	"go.mau.fi/libsignal/protocol"
	"go.mau.fi/libsignal/serialize"
	"go.mau.fi/libsignal/state/record"
)

var ser = serialize.NewProtoBufSerializer()

// fileStore is libsignal's session, prekey, signed prekey and identity
// store on files in one directory. It keeps nothing in memory but the
// device's own identity, so another process holding the directory lock
// sees every change.
//
//	sessions/<account hex>.<device>   session record (sessionfile.go)
//	prekeys/<id>                      one-time prekey record
//	signed/<id>                       signed prekey record
//	kemprekeys/<id>                   KEM prekey private part (kem.go)
//	identities/<account hex>          a contact's identity key (trusted on first use)
type fileStore struct {
	dir   string
	ident *identity.KeyPair
	regID uint32
}

func (s *fileStore) path(parts ...string) string {
	return filepath.Join(append([]string{s.dir}, parts...)...)
}

func sessionFile(a *protocol.SignalAddress) string {
	return a.Name() + "." + strconv.FormatUint(uint64(a.DeviceID()), 10)
}

func idFile(id uint32) string { return strconv.FormatUint(uint64(id), 10) }

// GetIdentityKeyPair returns this device's identity key pair.
func (s *fileStore) GetIdentityKeyPair() *identity.KeyPair { return s.ident }

// GetLocalRegistrationID returns this device's registration id.
func (s *fileStore) GetLocalRegistrationID() uint32 { return s.regID }

// SaveIdentity remembers a contact's identity key.
func (s *fileStore) SaveIdentity(_ context.Context, a *protocol.SignalAddress, k *identity.Key) error {
	return writeFile(s.path("identities", a.Name()), k.Serialize())
}

// IsTrustedIdentity trusts a contact's first identity key and only that
// one afterwards.
func (s *fileStore) IsTrustedIdentity(_ context.Context, a *protocol.SignalAddress, k *identity.Key) (bool, error) {
	known, err := readFile(s.path("identities", a.Name()))
	if err != nil || known == nil {
		return err == nil, err
	}
	return bytes.Equal(known, k.Serialize()), nil
}

// LoadPreKey returns a one-time prekey record, or nil.
func (s *fileStore) LoadPreKey(_ context.Context, id uint32) (*record.PreKey, error) {
	b, err := readFile(s.path("prekeys", idFile(id)))
	if err != nil || b == nil {
		return nil, err
	}
	return record.NewPreKeyFromBytes(b, ser.PreKeyRecord)
}

// StorePreKey stores a one-time prekey record.
func (s *fileStore) StorePreKey(_ context.Context, id uint32, r *record.PreKey) error {
	return writeFile(s.path("prekeys", idFile(id)), r.Serialize())
}

// ContainsPreKey reports whether a one-time prekey is stored.
func (s *fileStore) ContainsPreKey(_ context.Context, id uint32) (bool, error) {
	return exists(s.path("prekeys", idFile(id)))
}

// RemovePreKey deletes a used one-time prekey.
func (s *fileStore) RemovePreKey(_ context.Context, id uint32) error {
	return remove(s.path("prekeys", idFile(id)))
}

// LoadSignedPreKey returns a signed prekey record, or nil.
func (s *fileStore) LoadSignedPreKey(_ context.Context, id uint32) (*record.SignedPreKey, error) {
	b, err := readFile(s.path("signed", idFile(id)))
	if err != nil || b == nil {
		return nil, err
	}
	return record.NewSignedPreKeyFromBytes(b, ser.SignedPreKeyRecord)
}

// LoadSignedPreKeys returns every signed prekey record.
func (s *fileStore) LoadSignedPreKeys(ctx context.Context) ([]*record.SignedPreKey, error) {
	ents, err := os.ReadDir(s.path("signed"))
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	var out []*record.SignedPreKey
	for _, e := range ents {
		id, err := strconv.ParseUint(e.Name(), 10, 32)
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
func (s *fileStore) StoreSignedPreKey(_ context.Context, id uint32, r *record.SignedPreKey) error {
	return writeFile(s.path("signed", idFile(id)), r.Serialize())
}

// ContainsSignedPreKey reports whether a signed prekey is stored.
func (s *fileStore) ContainsSignedPreKey(_ context.Context, id uint32) (bool, error) {
	return exists(s.path("signed", idFile(id)))
}

// RemoveSignedPreKey deletes a signed prekey.
func (s *fileStore) RemoveSignedPreKey(_ context.Context, id uint32) error {
	return remove(s.path("signed", idFile(id)))
}

// LoadSession returns the session with a, or a fresh empty one.
func (s *fileStore) LoadSession(_ context.Context, a *protocol.SignalAddress) (*record.Session, error) {
	r, _, err := s.loadSessionFile(a)
	return r, err
}

// GetSubDeviceSessions returns the device ids of an account with a
// session.
func (s *fileStore) GetSubDeviceSessions(_ context.Context, name string) ([]uint32, error) {
	ents, err := os.ReadDir(s.path("sessions"))
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	var out []uint32
	for _, e := range ents {
		n, dev, ok := strings.Cut(e.Name(), ".")
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
func (s *fileStore) StoreSession(_ context.Context, a *protocol.SignalAddress, r *record.Session) error {
	_, f, err := s.loadSessionFile(a)
	if err != nil {
		return err
	}
	return s.storeSessionFile(a, r, f)
}

// ContainsSession reports whether there is a session with a.
func (s *fileStore) ContainsSession(_ context.Context, a *protocol.SignalAddress) (bool, error) {
	return exists(s.path("sessions", sessionFile(a)))
}

// DeleteSession forgets the session with a.
func (s *fileStore) DeleteSession(_ context.Context, a *protocol.SignalAddress) error {
	return remove(s.path("sessions", sessionFile(a)))
}

// DeleteAllSessions forgets every session.
func (s *fileStore) DeleteAllSessions(context.Context) error {
	return os.RemoveAll(s.path("sessions"))
}

func exists(name string) (bool, error) {
	_, err := os.Stat(name)
	if os.IsNotExist(err) {
		return false, nil
	}
	return err == nil, err
}

func remove(name string) error {
	if err := os.Remove(name); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

// addressName is the Signal address name of an account: its id in hex.
func addressName(account []byte) string { return hex.EncodeToString(account) }
