package messenger

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
)

// Safety-number verification (protocol.md: a changed identity key is
// refused "until the user has compared safety numbers"). e2e trusts a
// contact's first identity key and refuses any other one, keeping the
// last one refused as the offered key; the verification record is the
// user's: "I compared the safety number made with this key". It is a
// JSON record per contact, in Records under trust/<account hex> or in
// a program's TrustStates:
//
//	{"verified": "<fingerprint>", "changed": true, "warned": "<fingerprint>"}
//
// verified is the fingerprint (SHA-256, hex) of the key whose number
// was marked compared, changed says a verified key was replaced, and
// warned is the offered key NoteIdentityChanged last announced.

// Verification states (Verification.State).
const (
	// NotVerified: the safety number with the trusted key was never
	// marked compared.
	NotVerified = 0
	// Verified: the safety number with the trusted key was marked
	// compared, and no other key is offered.
	Verified = 1
	// ChangedSinceVerified: a key whose number was marked compared was
	// replaced (TrustOffered), or another one is offered.
	ChangedSinceVerified = 2
)

// Trust is e2e's record of contact identity keys: the trusted one and
// the last one refused (offered). *e2e.Device implements it.
type Trust interface {
	IdentityKeys(contact []byte) (trusted, offered []byte, err error)
	SafetyNumberWith(contact, key []byte) string
	TrustOffered(contact, key []byte) error
}

// SafetyNumber is the number both sides of a conversation compute from
// their identity keys: if they compare equal, read aloud or side by
// side, nobody is in the middle.
type SafetyNumber struct {
	// Number is 60 digits in twelve groups of five, separated by
	// spaces.
	Number string
	// Key is the contact's identity key it was made with: what
	// MarkVerified and TrustOffered take, so that they accept the key
	// the person compared and no other.
	Key []byte
}

// Verification is what this device knows of the user's checks of a
// contact's safety number.
type Verification struct {
	// State is NotVerified, Verified or ChangedSinceVerified.
	State int
	// Offered says the contact's devices show an identity key other
	// than the trusted one, refused until TrustOffered or MarkVerified
	// accepts it (OfferedSafetyNumber shows its number).
	Offered bool
}

// TrustStates keeps the verification records somewhere of a program's
// own (Go surface), in place of the store's Records: cmd/pigeon keeps
// them in its verified.json. A record is the JSON object above; a
// program keeps the fields it does not know as they are.
type TrustStates interface {
	// UpdateTrust calls f with the account's record (nil if none) under
	// a lock that every process sharing the state takes, and keeps what
	// f returns: nil keeps the record as it was, and "{}" means no
	// record.
	UpdateTrust(account []byte, f func(record []byte) ([]byte, error)) error
}

// UseTrustStates makes the Messenger keep verification records in ts;
// call it before anything else.
func (m *Messenger) UseTrustStates(ts TrustStates) { m.trusts = ts }

// trustRecord is the verification record of one contact.
type trustRecord struct {
	Verified string `json:"verified,omitempty"`
	Changed  bool   `json:"changed,omitempty"`
	Warned   string `json:"warned,omitempty"`
}

// keyFingerprint is how a key is named in a verification record.
func keyFingerprint(key []byte) string {
	h := sha256.Sum256(key)
	return hex.EncodeToString(h[:])
}

func trustKey(account []byte) string { return "trust/" + hex.EncodeToString(account) }

// updateTrust runs f on the account's record and keeps it if f changed
// it; f nil only reads.
func (m *Messenger) updateTrust(account []byte, f func(*trustRecord)) (trustRecord, error) {
	var out trustRecord
	apply := func(rec []byte) ([]byte, error) {
		out = trustRecord{}
		if rec != nil {
			if err := json.Unmarshal(rec, &out); err != nil {
				return nil, fmt.Errorf("messenger: verification record: %w", err)
			}
		}
		before := out
		if f != nil {
			f(&out)
		}
		if out == before {
			return nil, nil
		}
		return json.Marshal(out)
	}
	if m.trusts != nil {
		if err := m.trusts.UpdateTrust(account, apply); err != nil {
			return trustRecord{}, fmt.Errorf("messenger: %w", err)
		}
		return out, nil
	}
	m.trustMu.Lock()
	defer m.trustMu.Unlock()
	key := trustKey(account)
	rec, err := m.store.Get(key)
	if err != nil {
		return trustRecord{}, fmt.Errorf("messenger: %w", err)
	}
	b, err := apply(rec)
	switch {
	case err != nil:
		return trustRecord{}, err
	case b == nil:
	case out == trustRecord{}:
		err = m.store.Delete(key)
	default:
		err = m.store.Put(key, b)
	}
	if err != nil {
		return trustRecord{}, fmt.Errorf("messenger: %w", err)
	}
	return out, nil
}

// identityKeys is the account's trusted and offered identity keys;
// ErrNoIdentityKey when none is trusted yet.
func (m *Messenger) identityKeys(account []byte) (trusted, offered []byte, err error) {
	if len(account) != 16 {
		return nil, nil, ErrBadAccount
	}
	trusted, offered, err = m.store.IdentityKeys(account)
	if err != nil {
		return nil, nil, fmt.Errorf("messenger: %w", err)
	}
	if trusted == nil {
		return nil, nil, ErrNoIdentityKey
	}
	return trusted, offered, nil
}

// SafetyNumber is the safety number with the account's trusted
// identity key (ErrNoIdentityKey before a message or a key fetch
// brought one).
func (m *Messenger) SafetyNumber(account []byte) (*SafetyNumber, error) {
	trusted, _, err := m.identityKeys(account)
	if err != nil {
		return nil, err
	}
	return &SafetyNumber{Number: m.store.SafetyNumberWith(account, trusted), Key: trusted}, nil
}

// OfferedSafetyNumber is the safety number with the identity key the
// account's devices show instead of the trusted one (a send or a
// message refused with ErrIdentityChanged), nil if there is none: the
// number the person compares before accepting the key.
func (m *Messenger) OfferedSafetyNumber(account []byte) (*SafetyNumber, error) {
	_, offered, err := m.identityKeys(account)
	if err != nil || offered == nil {
		return nil, err
	}
	return &SafetyNumber{Number: m.store.SafetyNumberWith(account, offered), Key: offered}, nil
}

// Verification says whether the safety number with the account was
// marked compared, and whether another identity key is offered.
func (m *Messenger) Verification(account []byte) (*Verification, error) {
	trusted, offered, err := m.identityKeys(account)
	if err != nil {
		return nil, err
	}
	rec, err := m.updateTrust(account, nil)
	if err != nil {
		return nil, err
	}
	v := &Verification{Offered: offered != nil}
	switch {
	case rec.Verified == keyFingerprint(trusted) && offered == nil:
		v.State = Verified
	case rec.Verified != "" || rec.Changed:
		v.State = ChangedSinceVerified
	}
	return v, nil
}

// MarkVerified records that the person compared the safety number made
// with key (SafetyNumber.Key) and found it equal. key must be the
// account's trusted key or the offered one, which is then accepted as
// TrustOffered does; any other is refused with ErrNoOfferedKey.
func (m *Messenger) MarkVerified(account, key []byte) error {
	trusted, offered, err := m.identityKeys(account)
	if err != nil {
		return err
	}
	switch {
	case offered != nil && bytes.Equal(key, offered):
		if err := m.acceptOffered(account, key); err != nil {
			return err
		}
	case offered == nil && bytes.Equal(key, trusted):
	default:
		return ErrNoOfferedKey
	}
	_, err = m.updateTrust(account, func(r *trustRecord) { *r = trustRecord{Verified: keyFingerprint(key)} })
	return err
}

// ClearVerified removes the mark MarkVerified made.
func (m *Messenger) ClearVerified(account []byte) error {
	if len(account) != 16 {
		return ErrBadAccount
	}
	_, err := m.updateTrust(account, func(r *trustRecord) { r.Verified, r.Changed = "", false })
	return err
}

// TrustOffered accepts the account's offered identity key without
// marking its safety number compared; key must be the offered key
// (OfferedSafetyNumber's Key), or it fails with ErrNoOfferedKey. The
// sessions with the account's devices are forgotten, so the next send
// starts new ones. A verified mark becomes ChangedSinceVerified.
func (m *Messenger) TrustOffered(account, key []byte) error {
	if _, _, err := m.identityKeys(account); err != nil {
		return err
	}
	if err := m.acceptOffered(account, key); err != nil {
		return err
	}
	_, err := m.updateTrust(account, func(r *trustRecord) {
		if r.Verified != "" {
			r.Verified, r.Changed = "", true
		}
	})
	return err
}

func (m *Messenger) acceptOffered(account, key []byte) error {
	err := m.store.TrustOffered(account, key)
	if errors.Is(err, e2e.ErrNoOfferedKey) {
		return ErrNoOfferedKey
	}
	if err != nil {
		return fmt.Errorf("messenger: %w", err)
	}
	return nil
}

// NoteIdentityChanged is for a send or a message refused with
// ErrIdentityChanged: it records the offered key, so that a verified
// mark becomes ChangedSinceVerified, and says whether this offered key
// is new since the last call (so the app warns once per change). False
// when no key is offered.
func (m *Messenger) NoteIdentityChanged(account []byte) (bool, error) {
	_, offered, err := m.identityKeys(account)
	if err != nil || offered == nil {
		return false, err
	}
	first := false
	_, err = m.updateTrust(account, func(r *trustRecord) {
		if fp := keyFingerprint(offered); r.Warned != fp {
			r.Warned, first = fp, true
			if r.Verified != "" {
				r.Verified, r.Changed = "", true
			}
		}
	})
	if err != nil {
		return false, err
	}
	return first, nil
}
