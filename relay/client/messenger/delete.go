package messenger

import "time"

// Delete is a "delete for everyone": the sender asks that a message it
// sent no longer be shown. The messenger keeps no history, so the app
// finds the message (by From and MessageID in the conversation) and
// asks Within whether it is still recent enough to delete.
type Delete struct {
	// MessageID is the deleted message's id (MessageIDSize bytes).
	MessageID []byte
	// From is the account that sent the message and the delete;
	// FromDevice the device the delete came from.
	From       []byte
	FromDevice int64
	// FromSelf is true for a delete this account sent from another of
	// its devices; To is then the account the message went to (nil for
	// a group message).
	FromSelf bool
	To       []byte
	// GroupID is the group the message was sent in, nil for one-to-one.
	GroupID []byte
	// SentAtMillis is the sender's clock; ReceivedAtMillis the relay's.
	SentAtMillis, ReceivedAtMillis int64
	// Sealed is true when the delete came sealed.
	Sealed bool

	limit time.Duration
}

// Within reports whether the message, received on this device at
// receivedAtMillis (Unix milliseconds, the app's own record), may still
// be deleted: it was received at most Config.DeleteLimitMillis ago. A
// later delete is to be ignored (the message stays).
func (d *Delete) Within(receivedAtMillis int64) bool {
	return time.Since(time.UnixMilli(receivedAtMillis)) <= d.limit
}

// LimitMillis is the delete limit Within applies, in milliseconds.
func (d *Delete) LimitMillis() int64 { return d.limit.Milliseconds() }
