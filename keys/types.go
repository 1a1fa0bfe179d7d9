package keys

import (
	"crypto/ed25519"
	"encoding/hex"
	"time"
)

// AccountID is an account's random 128-bit id.
type AccountID [16]byte

// String returns a short prefix of the id, safe for logs: enough to tell
// accounts apart in one log, too little to name one.
func (a AccountID) String() string { return hex.EncodeToString(a[:3]) + "…" }

// Hex returns the full id in hex. Never log it.
func (a AccountID) Hex() string { return hex.EncodeToString(a[:]) }

// Device is one device of an account, as registered.
type Device struct {
	ID             uint32
	AuthKey        ed25519.PublicKey // 32 bytes; signs the connection's auth message
	IdentityKey    []byte            // Signal identity public key, 33 bytes (0x05 || X25519)
	RegistrationID uint32
	SignedPreKey   SignedPreKey
	Created        time.Time
	// Name is the device's display name, encrypted by the account's
	// devices; opaque here, at most MaxNameBytes.
	Name []byte
	// LastSeen is the start (UTC) of the last day the device opened a
	// session, zero if never; filled by Devices.
	LastSeen time.Time
	// KemLastResort is the device's last-resort KEM prekey, nil if it
	// has none (a device without post-quantum keys).
	KemLastResort *KemPreKey `json:",omitempty"`
}

// MaxNameBytes bounds a device's encrypted name.
const MaxNameBytes = 256

// SignedPreKey is a device's medium-term prekey with its XEdDSA signature by
// the identity key.
type SignedPreKey struct {
	ID        uint32
	PublicKey []byte // 33 bytes
	Signature []byte // 64 bytes
}

// PreKey is a one-time prekey.
type PreKey struct {
	ID        uint32
	PublicKey []byte // 33 bytes
}

// KemPreKey is a post-quantum prekey: an ML-KEM-1024 encapsulation key in
// libsignal's encoding and the XEdDSA signature by the identity key over
// that encoding (see KemPublicKeySize). A device holds one-time ones,
// each handed out once, and one last-resort one.
type KemPreKey struct {
	ID        uint32
	PublicKey []byte // KemPublicKeySize bytes: KemKeyType, then the key
	Signature []byte // 64 bytes
}

// Bundle is what a sender needs to start a session with one device.
type Bundle struct {
	DeviceID       uint32
	RegistrationID uint32
	IdentityKey    []byte
	SignedPreKey   SignedPreKey
	// PreKey is the one-time prekey claimed by this fetch, or nil when the
	// device has none left.
	PreKey *PreKey
	// Remaining is how many one-time prekeys the device has left after
	// this fetch.
	Remaining int
	// KemPreKey is the one-time KEM prekey claimed by this fetch, else
	// the device's last-resort one (KemLastResort true); nil when the
	// device has neither.
	KemPreKey *KemPreKey
	// KemLastResort says KemPreKey is the last-resort one, which stays
	// stored.
	KemLastResort bool
	// KemRemaining is how many one-time KEM prekeys the device has left
	// after this fetch.
	KemRemaining int
}
