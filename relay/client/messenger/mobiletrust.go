package messenger

// Safety-number verification on the binding surface: Mobile's calls are
// the Messenger's (trust.go), which need no connection.

// SafetyNumber is Messenger.SafetyNumber.
func (b *Mobile) SafetyNumber(account []byte) (*SafetyNumber, error) {
	return b.m.SafetyNumber(account)
}

// OfferedSafetyNumber is Messenger.OfferedSafetyNumber (nil when no
// other key is offered).
func (b *Mobile) OfferedSafetyNumber(account []byte) (*SafetyNumber, error) {
	return b.m.OfferedSafetyNumber(account)
}

// Verification is Messenger.Verification.
func (b *Mobile) Verification(account []byte) (*Verification, error) {
	return b.m.Verification(account)
}

// MarkVerified is Messenger.MarkVerified.
func (b *Mobile) MarkVerified(account, key []byte) error { return b.m.MarkVerified(account, key) }

// ClearVerified is Messenger.ClearVerified.
func (b *Mobile) ClearVerified(account []byte) error { return b.m.ClearVerified(account) }

// TrustOffered is Messenger.TrustOffered.
func (b *Mobile) TrustOffered(account, key []byte) error { return b.m.TrustOffered(account, key) }

// NoteIdentityChanged is Messenger.NoteIdentityChanged.
func (b *Mobile) NoteIdentityChanged(account []byte) (bool, error) {
	return b.m.NoteIdentityChanged(account)
}
