package keys

import "errors"

// Errors returned by the Store. Callers match them with errors.Is.
var (
	// ErrUnknownAccount means no account has that id.
	ErrUnknownAccount = errors.New("keys: unknown account")
	// ErrUnknownDevice means the account has no device with that id (it may
	// have been removed).
	ErrUnknownDevice = errors.New("keys: unknown device")
	// ErrInvalidKey means a key has the wrong size or type.
	ErrInvalidKey = errors.New("keys: invalid key")
	// ErrBadSignature means a signed prekey's XEdDSA signature does not
	// verify against the device's identity key.
	ErrBadSignature = errors.New("keys: signed prekey signature does not verify")
	// ErrTooManyPreKeys means a batch is over Config.MaxBatch or the device
	// would hold more than Config.MaxPreKeys one-time prekeys.
	ErrTooManyPreKeys = errors.New("keys: too many one-time prekeys")
	// ErrTooManyDevices means the account already has the most devices
	// allowed.
	ErrTooManyDevices = errors.New("keys: too many devices")
	// ErrBadLinkCode means a link code is unknown, used, expired or made
	// for another account.
	ErrBadLinkCode = errors.New("keys: bad link code")
)
