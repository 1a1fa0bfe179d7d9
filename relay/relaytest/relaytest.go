// Package relaytest has helpers for tests that drive a real relay: device
// registrations with real Signal keys and quiet loggers for libsignal and
// Pebble. Like net/http/httptest, it is for tests, and for the load
// generator (cmd/pigeonbench), which simulates devices the same way.
package relaytest

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"

	"go.mau.fi/libsignal/keys/identity"
	"go.mau.fi/libsignal/logger"
	"go.mau.fi/libsignal/serialize"
	"go.mau.fi/libsignal/util/keyhelper"

	"github.com/pigeonhole/pigeonhole/relay/client"
)

// quietSignal silences libsignal, which prints to stdout by default.
type quietSignal struct{}

func (quietSignal) Debug(string, string)   {}
func (quietSignal) Info(string, string)    {}
func (quietSignal) Warning(string, string) {}
func (quietSignal) Error(string, string)   {}
func (quietSignal) Configure(string)       {}

func init() { logger.Logger = quietSignal{} }

// QuietPebble is a pebble.Logger that drops Pebble's informational chatter
// and panics on a fatal error.
type QuietPebble struct{}

// Infof drops the message.
func (QuietPebble) Infof(string, ...any) {}

// Errorf drops the message.
func (QuietPebble) Errorf(string, ...any) {}

// Fatalf panics with the message.
func (QuietPebble) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}

// NewRegistration returns a first-device registration with real Signal
// keys (identity, signed prekey id 1, one-time prekeys 1..n) and a fresh
// Ed25519 auth key, and the identity key pair behind it.
func NewRegistration(n int) (*client.Registration, *identity.KeyPair, error) {
	ik, err := keyhelper.GenerateIdentityKeyPair()
	if err != nil {
		return nil, nil, err
	}
	reg, err := NewLinkedRegistration(ik, n)
	return reg, ik, err
}

// NewLinkedRegistration is NewRegistration for a device that shares the
// identity ik (a linked device): fresh auth key, registration id, signed
// prekey and one-time prekeys.
func NewLinkedRegistration(ik *identity.KeyPair, n int) (*client.Registration, error) {
	_, auth, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	ser := serialize.NewProtoBufSerializer()
	spk, err := keyhelper.GenerateSignedPreKey(ik, 1, ser.SignedPreKeyRecord)
	if err != nil {
		return nil, err
	}
	sig := spk.Signature()
	reg := &client.Registration{
		AuthKey:        auth,
		IdentityKey:    ik.PublicKey().Serialize(),
		RegistrationID: keyhelper.GenerateRegistrationID(),
		SignedPreKey:   client.SignedPreKey{ID: 1, PublicKey: spk.KeyPair().PublicKey().Serialize(), Signature: sig[:]},
	}
	if n > 0 {
		pks, err := keyhelper.GeneratePreKeys(1, n, ser.PreKeyRecord)
		if err != nil {
			return nil, err
		}
		for _, p := range pks {
			reg.PreKeys = append(reg.PreKeys, client.PreKey{ID: p.ID().Value, PublicKey: p.KeyPair().PublicKey().Serialize()})
		}
	}
	return reg, nil
}
