package keys

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// AccessVerifierSize is the size of an unidentified-access verifier
// (spec.AccessVerifierSize: an HMAC-SHA256 of the access key).
const AccessVerifierSize = 32

// UnidentifiedAccess is what an account set for sealed sends to it
// (protocol.md, "Sealed sender"): the verifier of its access key, never
// the key itself, and whether anyone may send without one. The zero value
// means sealed sends to the account are refused.
type UnidentifiedAccess struct {
	Verifier    []byte // AccessVerifierSize bytes, or empty
	AllowAnyone bool
}

// accessKey is where an account's UnidentifiedAccess lives.
func accessKey(a AccountID) []byte {
	return append([]byte("k/u/"), a[:]...)
}

// checkAccess refuses a verifier of the wrong size.
func checkAccess(ua UnidentifiedAccess) error {
	if len(ua.Verifier) != 0 && len(ua.Verifier) != AccessVerifierSize {
		return fmt.Errorf("%w: an access verifier is %d bytes, not %d", ErrInvalidKey, AccessVerifierSize, len(ua.Verifier))
	}
	return nil
}

// SetUnidentifiedAccess sets or replaces (rotates) account a's access
// verifier and its allow-anyone choice, durably.
func (s *Store) SetUnidentifiedAccess(ctx context.Context, a AccountID, ua UnidentifiedAccess) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkAccess(ua); err != nil {
		return err
	}
	defer s.lock(a)()
	if exists, err := s.has(accountKey(a)); err != nil {
		return err
	} else if !exists {
		return ErrUnknownAccount
	}
	v := make([]byte, 0, 1+len(ua.Verifier))
	v = append(v, 0)
	if ua.AllowAnyone {
		v[0] = 1
	}
	v = append(v, ua.Verifier...)
	if err := s.db.Set(accessKey(a), v, pebble.Sync); err != nil {
		return fmt.Errorf("keys: set unidentified access: %w", err)
	}
	return nil
}

// UnidentifiedAccess returns what account a set for sealed sends, the
// zero value if it set nothing, or ErrUnknownAccount.
func (s *Store) UnidentifiedAccess(ctx context.Context, a AccountID) (UnidentifiedAccess, error) {
	if err := ctx.Err(); err != nil {
		return UnidentifiedAccess{}, err
	}
	v, closer, err := s.db.Get(accessKey(a))
	if errors.Is(err, pebble.ErrNotFound) {
		if exists, err := s.has(accountKey(a)); err != nil {
			return UnidentifiedAccess{}, err
		} else if !exists {
			return UnidentifiedAccess{}, ErrUnknownAccount
		}
		return UnidentifiedAccess{}, nil
	}
	if err != nil {
		return UnidentifiedAccess{}, fmt.Errorf("keys: read unidentified access: %w", err)
	}
	defer closer.Close()
	if len(v) < 1 || v[0] > 1 || (len(v) != 1 && len(v) != 1+AccessVerifierSize) {
		return UnidentifiedAccess{}, fmt.Errorf("%w (unidentified access, %d bytes)", errCorrupt, len(v))
	}
	ua := UnidentifiedAccess{AllowAnyone: v[0] == 1}
	if len(v) > 1 {
		ua.Verifier = bytes.Clone(v[1:])
	}
	return ua, nil
}
