package messenger

import (
	"time"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
)

// Sealed is the sealed sender part of a Store (protocol.md, "Sealed
// sender"): sealing ciphertexts with this device's identity key and
// opening sealed envelopes (*e2e.Device does both), and the access keys.
type Sealed interface {
	// Seal wraps each per-device ciphertext of one send in a sealed
	// message to account, carrying the sender certificate cert.
	Seal(account []byte, msgs []client.DeviceMessage, cert []byte) ([]client.DeviceMessage, error)
	// OpenSealed opens a sealed envelope and checks its sender
	// certificate against the trusted server keys; it returns the
	// envelope as the certificate names its sender.
	OpenSealed(env *client.Envelope, trusted e2e.ServerKeys, now time.Time) (*client.Envelope, error)
	// AccessKeys keeps the unidentified-access keys, 16 raw bytes each:
	// "access-key" is this account's own, "access-keys/ACCOUNT" (the
	// account id in lowercase hex) a contact's, as its messages carried
	// it. An app's store may keep them with its other records under
	// those keys.
	AccessKeys() Records
}

// Record keys of the sealed sender state: in AccessKeys, and (the
// certificate and the pinned server keys) in the store's Records.
const (
	ownAccessKeyRecord    = "access-key"
	contactAccessKeysDir  = "access-keys/"
	senderCertRecord      = "sealed/sender-cert"
	pinnedServerKeyRecord = "sealed/server-keys"
)

// AccessKeys keeps the access keys where cmd/pigeon always has: the
// files access-key and access-keys/ACCOUNT in the device directory
// (0600, replaced atomically).
func (s *DirStore) AccessKeys() Records { return &fileRecords{dir: s.Dir()} }
