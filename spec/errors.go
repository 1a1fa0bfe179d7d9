package spec

import "fmt"

// Code is a stable numeric error code. Numbers are never reused; the table
// in protocol.md ("Error codes") lists the same codes, checked by a test.
type Code uint32

// Error codes. The comment on each is its meaning; CodeInfo adds what a
// client should do.
const (
	CodeOK                 Code = 0  // not an error
	CodeBadRequest         Code = 1  // malformed or missing fields
	CodeFrameTooLarge      Code = 2  // frame length over the limit
	CodeUnauthenticated    Code = 3  // request needs an authenticated connection
	CodeBadSignature       Code = 4  // auth signature or proof does not verify
	CodeUnknownDevice      Code = 5  // no such device, or it was removed
	CodeRateLimited        Code = 6  // too many requests; see retry_after_ms
	CodeInvalidKey         Code = 7  // a key has the wrong size or type
	CodeBadPreKeySignature Code = 8  // signed prekey signature does not verify
	CodeTooManyPreKeys     Code = 9  // over 100 prekeys in one request
	CodeUnknownAccount     Code = 10 // no such account
	CodeStaleDevices       Code = 11 // device list does not match the account
	CodeQueueFull          Code = 12 // a recipient queue is at its quota
	CodeEnvelopeTooLarge   Code = 13 // a ciphertext is over the envelope limit
	CodeInternal           Code = 14 // the relay failed; retry later
	CodeUnsupported        Code = 15 // unknown request or event type
	CodeShuttingDown       Code = 16 // the relay is stopping; reconnect
	CodeDuplicateDevice    Code = 17 // a device id appears twice in a send
	CodeProtocol           Code = 18 // frames out of order on the session stream
	CodePushUnavailable    Code = 19 // the relay does not send pushes through this provider
	CodeUnknownAddress     Code = 20 // no open provisioning stream has this address
	CodeBadLinkCode        Code = 21 // link code unknown, used, expired or for another account
	CodeTooManyDevices     Code = 22 // the account has its maximum number of devices
	CodeNotPrimary         Code = 23 // only the primary device (device 1) may do this
	CodeBlobTooLarge       Code = 24 // an upload is over the relay's blob size limit
	CodeBlobQuota          Code = 25 // the account's daily upload quota is used up
	CodeUnknownBlob        Code = 26 // no such blob (it may have expired)
	CodeMediaUnavailable   Code = 27 // the relay keeps no media
	CodeSenderShare        Code = 28 // the sender's share of a recipient device's queue is used up
	CodeUnidentified       Code = 29 // a sealed send's access key does not open the recipient
)

// CodeInfo describes one error code.
type CodeInfo struct {
	Code   Code
	Name   string
	Action string // what a client should do
}

// Codes is the error table, in code order.
var Codes = []CodeInfo{
	{CodeOK, "OK", "nothing"},
	{CodeBadRequest, "BAD_REQUEST", "fix the request; retrying it unchanged fails again"},
	{CodeFrameTooLarge, "FRAME_TOO_LARGE", "send less in one request"},
	{CodeUnauthenticated, "UNAUTHENTICATED", "open the session stream with a valid SessionOpen first"},
	{CodeBadSignature, "BAD_SIGNATURE", "sign the auth message of this connection with the registered auth key"},
	{CodeUnknownDevice, "UNKNOWN_DEVICE", "the device is gone: register or link again"},
	{CodeRateLimited, "RATE_LIMITED", "wait retry_after_ms, then retry"},
	{CodeInvalidKey, "INVALID_KEY", "send keys of the documented size and type"},
	{CodeBadPreKeySignature, "BAD_PREKEY_SIGNATURE", "sign the signed prekey with the identity key"},
	{CodeTooManyPreKeys, "TOO_MANY_PREKEYS", "upload at most 100 prekeys per request"},
	{CodeUnknownAccount, "UNKNOWN_ACCOUNT", "check the account id"},
	{CodeStaleDevices, "STALE_DEVICES", "refetch keys for missing devices, drop extra ones, send again"},
	{CodeQueueFull, "QUEUE_FULL", "retry later; the recipient has too much undelivered mail"},
	{CodeEnvelopeTooLarge, "ENVELOPE_TOO_LARGE", "send a smaller message (media goes through blobs)"},
	{CodeInternal, "INTERNAL", "retry later with backoff"},
	{CodeUnsupported, "UNSUPPORTED", "the relay does not know this request; upgrade or skip it"},
	{CodeShuttingDown, "SHUTTING_DOWN", "reconnect (to another relay if there is one)"},
	{CodeDuplicateDevice, "DUPLICATE_DEVICE", "name each device once"},
	{CodeProtocol, "PROTOCOL", "follow the session stream rules; the connection is closed"},
	{CodePushUnavailable, "PUSH_UNAVAILABLE", "keep a connection open, or register a token for a provider the relay has"},
	{CodeUnknownAddress, "UNKNOWN_ADDRESS", "scan the new device's current code again"},
	{CodeBadLinkCode, "BAD_LINK_CODE", "start linking again from the primary device"},
	{CodeTooManyDevices, "TOO_MANY_DEVICES", "revoke a device before linking another"},
	{CodeNotPrimary, "NOT_PRIMARY", "do this from the primary device"},
	{CodeBlobTooLarge, "BLOB_TOO_LARGE", "send a smaller file"},
	{CodeBlobQuota, "BLOB_QUOTA", "wait until tomorrow (UTC), or send less"},
	{CodeUnknownBlob, "UNKNOWN_BLOB", "the file is gone (expired); ask the sender again"},
	{CodeMediaUnavailable, "MEDIA_UNAVAILABLE", "this relay does not keep files"},
	{CodeSenderShare, "SENDER_QUEUE_SHARE", "retry later, once the recipient has fetched some of your messages"},
	{CodeUnidentified, "UNIDENTIFIED_ACCESS", "send identified (the recipient's access key changed or was never shared)"},
}

// String returns the code's name, such as "STALE_DEVICES".
func (c Code) String() string {
	if int(c) < len(Codes) {
		return Codes[c].Name
	}
	return fmt.Sprintf("CODE_%d", uint32(c))
}

// Err builds an Error message.
func Err(c Code, format string, args ...any) *Error {
	return &Error{Code: uint32(c), Message: fmt.Sprintf(format, args...)}
}

// QUIC application error codes used in CONNECTION_CLOSE (protocol.md,
// "Closing").
const (
	CloseNormal        = 0x0 // client or relay closing normally
	CloseProtocol      = 0x1 // a peer broke the protocol
	CloseAuthFailed    = 0x2 // SessionOpen refused
	CloseGoingAway     = 0x3 // the relay is shutting down; reconnect
	CloseDeviceRemoved = 0x4 // the device was revoked
	CloseAuthTimeout   = 0x5 // not authenticated (or registered) within AuthWait
	CloseTooManyUnauth = 0x6 // too many unauthenticated connections from this network
)
