package messenger

import (
	"errors"
	"fmt"
	"strings"

	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
)

// Errors returned by the package. Refusals from the relay are wrapped
// *client.Error values: errors.As gives the stable code.
var (
	// ErrNoDevice means the directory (or KV) holds no device yet.
	ErrNoDevice = errors.New("messenger: no device")
	// ErrNotRegistered means the store's device has no account yet.
	ErrNotRegistered = errors.New("messenger: the device is not registered")
	// ErrClosed means the Messenger was closed.
	ErrClosed = errors.New("messenger: closed")
	// ErrUnreachable matches (errors.Is) every *UnreachableError: the
	// relay could not be reached, or is not the one pinned (errors.Is
	// finds client.ErrFingerprint in the error too).
	ErrUnreachable = errors.New("messenger: the relay is unreachable")
	// ErrSendOnly means Run was called on a Messenger opened with
	// Config.SendOnly.
	ErrSendOnly = errors.New("messenger: opened send-only; it receives nothing")
	// ErrBadAccount means an account (or group) id is not 16 bytes.
	ErrBadAccount = errors.New("messenger: an account or group id is 16 bytes")
	// ErrBadAttachment means an attachment's size or key is impossible:
	// the message describing the file is malformed.
	ErrBadAttachment = errors.New("messenger: the message describing the file is malformed")
	// ErrEmpty means a message has no text.
	ErrEmpty = errors.New("messenger: nothing to send")
	// ErrNoRecipients means the account (or group) has no device to send
	// to: sending to one's own account without other devices, or a group
	// with nobody else in it.
	ErrNoRecipients = errors.New("messenger: no devices to send to")
	// ErrIdentityChanged means a contact's identity key is not the one
	// trusted before (they reinstalled, or someone is in the middle);
	// nothing was sent. It is e2e.ErrIdentityChanged.
	ErrIdentityChanged = e2e.ErrIdentityChanged
	// ErrNoIdentityKey means no identity key is known for the contact
	// yet: a message from them or a send to them brings it.
	ErrNoIdentityKey = errors.New("messenger: no identity key known for the contact yet")
	// ErrNoOfferedKey means MarkVerified or TrustOffered was given a key
	// other than the one the contact's devices show (the person compared
	// another number), or no key is offered.
	ErrNoOfferedKey = errors.New("messenger: not the identity key the contact's devices show")
	// ErrNoGroup means the group is unknown here.
	ErrNoGroup = errors.New("messenger: no such group")
	// ErrNotMember means this account was removed from the group.
	ErrNotMember = errors.New("messenger: no longer a member of the group")
	// ErrNotAdmin means only the group's admin may change its members.
	ErrNotAdmin = errors.New("messenger: only the group's admin can change its members")
	// ErrBadGroup means a group name or member list is not acceptable.
	ErrBadGroup = errors.New("messenger: bad group")
	// ErrPreKeysPending comes with the Messenger from Register and
	// Link.Wait when the device joined but its first one-time KEM
	// prekeys could not be uploaded: the device works (contacts use its
	// last-resort KEM prekey meanwhile), and RefillPreKeys or Run's
	// refill on the relay's low notice uploads them later.
	ErrPreKeysPending = errors.New("messenger: the one-time post-quantum prekeys are not uploaded yet")
	// ErrAccessKeyPending comes with the Messenger from Register when
	// the account was made but its access key for sealed sends could not
	// be set on the relay: contacts send to it identified until a later
	// registration of a key (the account works all the same).
	ErrAccessKeyPending = errors.New("messenger: no access key for sealed sends yet")
	// ErrBadLink means a link URI could not be used.
	ErrBadLink = errors.New("messenger: bad link")
	// errRetarget says a group's devices or sender key changed while a
	// send was being prepared: work out the targets again.
	errRetarget = errors.New("messenger: the group's devices or key changed")
)

// UnreachableError is what a call returns when the relay cannot be
// reached, or is not the one pinned (relay/client.ErrFingerprint): at
// once with Config.FailFast, from Register and StartLink, and never
// otherwise (the Messenger dials again with backoff). Err is the
// failed attempt's reason. A refusal by a reachable relay is a
// *client.Error instead.
type UnreachableError struct {
	Err error
}

func (e *UnreachableError) Error() string {
	return "messenger: cannot reach the relay: " + e.Err.Error()
}

// Unwrap returns the reason.
func (e *UnreachableError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrUnreachable) true for an *UnreachableError.
func (e *UnreachableError) Is(target error) bool { return target == ErrUnreachable }

// AnnounceError is what CreateGroup, ChangeGroup and RenameGroup return
// when the group's new state, kept all the same, did not reach everyone
// it went to: Failed are the member (or just removed) accounts that did
// not get it, OwnDevices why this account's other devices did not (nil
// if they did, or there are none). Calling ChangeGroup with no change
// sends the state again. What ends every send (an *UnreachableError, a
// *client.Error UNKNOWN_DEVICE when this device was removed, ErrClosed,
// the context's error) is returned as it is, at the first send.
type AnnounceError struct {
	Failed     []AnnounceFailure
	OwnDevices error
}

// AnnounceFailure is one account a group's state did not reach, and why.
type AnnounceFailure struct {
	Account []byte
	Err     error
}

func (e *AnnounceError) Error() string {
	if len(e.Failed) == 0 {
		return "messenger: this account's other devices did not get the group's state: " + e.OwnDevices.Error()
	}
	ids := make([]string, len(e.Failed))
	for i, f := range e.Failed {
		ids[i] = shortID(f.Account)
	}
	return fmt.Sprintf("messenger: %d members did not get the group's state (%s); ChangeGroup with no change sends it again", len(e.Failed), strings.Join(ids, ", "))
}

// Unwrap returns the reasons.
func (e *AnnounceError) Unwrap() []error {
	var out []error
	for _, f := range e.Failed {
		out = append(out, f.Err)
	}
	if e.OwnDevices != nil {
		out = append(out, e.OwnDevices)
	}
	return out
}
