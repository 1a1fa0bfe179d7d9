package messenger

// Reasons a message was dropped (Dropped.Reason).
const (
	// DropIdentityChanged: the sender's identity key is not the one
	// this device knows; the message was not decrypted.
	DropIdentityChanged = "identity_changed"
	// DropNoSenderKey: a group message from a device whose sender key
	// this device does not have (it is given only to members).
	DropNoSenderKey = "no_sender_key"
	// DropUndecryptable: the message does not decrypt.
	DropUndecryptable = "undecryptable"
	// DropSealed: a sealed message that does not open, or whose sender
	// certificate does not verify; From is empty.
	DropSealed = "sealed"
	// DropUnreadable: it decrypted, but its content cannot be read.
	DropUnreadable = "unreadable"
	// DropNotMember: a group message from someone not in a group with
	// this account.
	DropNotMember = "not_member"
	// DropGroupUpdate: a group change that is malformed, or not from
	// the group's admin (GroupName is the name it gives).
	DropGroupUpdate = "group_update"
	// DropSenderKey: a group's sender key that was refused.
	DropSenderKey = "sender_key"
	// DropUnsupported: a kind of message this version does not handle.
	DropUnsupported = "unsupported"
)

// Dropped is a message that came but is not handed over as an event.
// Err says why, for people; it never holds the message's content.
type Dropped struct {
	Reason     string // one of the Drop constants
	From       []byte // the sender's account; empty for DropSealed
	FromDevice int64
	GroupID    []byte // the group, when the message named one
	GroupName  string // DropGroupUpdate: the name the change gives
	// NotAdmin is true for a DropGroupUpdate from someone not the
	// group's admin (false: it was malformed).
	NotAdmin bool
	Err      string
}
