package jskeys

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/pigeonhole/pigeonhole/keys"
)

// accessKey is the record of an account's unidentified access (a verifier
// of its access key and the allow-anyone choice), MAC'd like every record.
func accessKey(a keys.AccountID) string { return "u." + a.Hex() }

// accessRecord is the stored form of keys.UnidentifiedAccess.
type accessRecord struct {
	Verifier    []byte `json:"verifier,omitempty"`
	AllowAnyone bool   `json:"allow_anyone,omitempty"`
}

// SetUnidentifiedAccess sets or replaces (rotates) account a's access
// verifier and its allow-anyone choice.
func (s *Store) SetUnidentifiedAccess(ctx context.Context, a keys.AccountID, ua keys.UnidentifiedAccess) error {
	if n := len(ua.Verifier); n != 0 && n != keys.AccessVerifierSize {
		return fmt.Errorf("%w: an access verifier is %d bytes, not %d", keys.ErrInvalidKey, keys.AccessVerifierSize, n)
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if _, _, err := s.loadAccount(ctx, a); err != nil {
		return err
	}
	val, err := json.Marshal(accessRecord{Verifier: ua.Verifier, AllowAnyone: ua.AllowAnyone})
	if err != nil {
		return fmt.Errorf("jskeys: %w", err)
	}
	if err := s.putAny(ctx, accessKey(a), val); err != nil {
		return fmt.Errorf("jskeys: set unidentified access: %w", err)
	}
	return nil
}

// UnidentifiedAccess returns what account a set for sealed sends, the
// zero value if it set nothing, or keys.ErrUnknownAccount. A record that
// fails its MAC check is an error wrapping ErrBadRecord.
func (s *Store) UnidentifiedAccess(ctx context.Context, a keys.AccountID) (keys.UnidentifiedAccess, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	v, rev, err := s.get(ctx, accessKey(a))
	if err != nil {
		return keys.UnidentifiedAccess{}, err
	}
	if rev == 0 {
		if _, _, err := s.loadAccount(ctx, a); err != nil {
			return keys.UnidentifiedAccess{}, err
		}
		return keys.UnidentifiedAccess{}, nil
	}
	var r accessRecord
	if err := json.Unmarshal(v, &r); err != nil || (len(r.Verifier) != 0 && len(r.Verifier) != keys.AccessVerifierSize) {
		return keys.UnidentifiedAccess{}, fmt.Errorf("jskeys: corrupt unidentified access record")
	}
	return keys.UnidentifiedAccess{Verifier: r.Verifier, AllowAnyone: r.AllowAnyone}, nil
}
