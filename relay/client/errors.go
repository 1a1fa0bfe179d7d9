package client

import (
	"errors"
	"fmt"

	"github.com/pigeonhole/pigeonhole/spec"
)

// Error is a refusal from the relay: a stable code from spec/protocol.md
// and the relay's sentence.
type Error struct {
	Code    uint32
	Message string
	// Missing and Extra are set with STALE_DEVICES.
	Missing []uint32
	Extra   []uint32
	// RetryAfterMillis is set with RATE_LIMITED.
	RetryAfterMillis uint32
	// Stale is set with STALE_DEVICES on a SendMulti: every account whose
	// device list did not match.
	Stale []StaleAccount
}

// StaleAccount is one recipient of a SendMulti whose device list did not
// match: refetch keys for Missing, drop Extra.
type StaleAccount struct {
	AccountID      []byte
	Missing, Extra []uint32
}

func (e *Error) Error() string {
	return fmt.Sprintf("relay refused (%s): %s", spec.Code(e.Code), e.Message)
}

// CodeName returns the code's name, such as "STALE_DEVICES".
func (e *Error) CodeName() string { return spec.Code(e.Code).String() }

func fromSpec(e *spec.Error) *Error {
	out := &Error{
		Code:             e.Code,
		Message:          e.Message,
		Missing:          e.MissingDevices,
		Extra:            e.ExtraDevices,
		RetryAfterMillis: e.RetryAfterMs,
	}
	for _, a := range e.StaleAccounts {
		out.Stale = append(out.Stale, StaleAccount{AccountID: a.AccountId, Missing: a.MissingDevices, Extra: a.ExtraDevices})
	}
	return out
}

// ErrorCode returns the relay error code in err, or 0 (OK) when err is not
// a relay refusal.
func ErrorCode(err error) uint32 {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

// Sentinel errors of the client itself.
var (
	// ErrFingerprint means the relay's certificate does not match the pin.
	ErrFingerprint = errors.New("relay certificate does not match the pinned fingerprint")
	// ErrNoSession means the call needs Authenticate first.
	ErrNoSession = errors.New("no session: authenticate first")
	// ErrSessionClosed means the relay ended the session stream.
	ErrSessionClosed = errors.New("session closed by the relay")
)
