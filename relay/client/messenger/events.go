package messenger

// Handler receives what arrives for this device, one event at a time, in
// the order the relay delivered it. The envelope an event came in is
// acked only after the method returned nil: an error leaves it queued at
// the relay, and it comes again (after a backoff, on a new connection),
// so an app can return an error when it could not store a message. The
// methods run on Run's goroutine; a slow handler slows only receiving.
// It is on the binding surface: gomobile turns it into a Java interface
// or an Objective-C protocol the app implements.
type Handler interface {
	// OnMessage gets a text message from a contact or a group member, or
	// a copy of one this account sent from another device (FromSelf).
	OnMessage(m *Message) error
	// OnReceipt gets a delivered or read receipt.
	OnReceipt(r *Receipt) error
	// OnTyping gets a typing indicator.
	OnTyping(t *Typing) error
	// OnGroup gets a change to a group: this account was added to it,
	// its members or name changed, or this account was removed.
	OnGroup(g *GroupChange) error
	// OnDevices gets this account's device list after a device was
	// linked or revoked.
	OnDevices(d *DeviceChange) error
	// OnDelete gets a "delete for everyone" of a message its sender
	// sent; Delete.Within applies Config.DeleteLimitMillis.
	OnDelete(d *Delete) error
	// OnDropped says that a message was not delivered as an event: it
	// did not decrypt, could not be read, or was refused (Dropped.Reason).
	// Nothing is left to ack or retry, so it returns nothing.
	OnDropped(d *Dropped)
	// OnDrained says that everything queued for this device has been
	// handed over, for now: a program can show a batch at once. More may
	// follow on the same connection (then OnDrained comes again).
	OnDrained()
	// OnConnection says whether the relay is reachable: connected false
	// with the reason and the wait before the next attempt, connected
	// true once it is back.
	OnConnection(connected bool, reason string, retryMillis int64)
}

// Message is a decrypted text message, or a file (Attachment set).
type Message struct {
	// ID is the sender's id for the message (MessageIDSize bytes), for
	// receipts; empty from clients that send none.
	ID []byte
	// From is the sender's account id; FromDevice its device.
	From       []byte
	FromDevice int64
	// FromSelf is true for a copy of a message this account sent from
	// another of its devices; To is then the account it went to (nil
	// for a group message).
	FromSelf bool
	To       []byte
	// GroupID is the group the message was sent in, nil for one-to-one.
	GroupID []byte
	Text    string
	// Attachment is the file the message sends, nil for a text (and
	// for a FromSelf copy, whose Text says what was sent).
	Attachment *Attachment
	// SentAtMillis is the sender's clock; ReceivedAtMillis the relay's.
	SentAtMillis, ReceivedAtMillis int64
	// Sealed is true when the message came sealed: the relay did not
	// learn who sent it.
	Sealed bool
}

// Receipt says that messages this account sent were delivered to, or
// read on, a device of From.
type Receipt struct {
	From       []byte
	FromDevice int64
	GroupID    []byte // nil for one-to-one
	Read       bool   // false: delivered
	// SentAtMillis is the sender's clock.
	SentAtMillis int64
	// IDs are the message ids, MessageIDSize bytes each, concatenated
	// (Count and ID take them apart).
	IDs []byte
}

// Count is how many message ids the receipt names.
func (r *Receipt) Count() int { return len(r.IDs) / MessageIDSize }

// ID returns the i-th message id.
func (r *Receipt) ID(i int) []byte { return r.IDs[i*MessageIDSize : (i+1)*MessageIDSize] }

// Typing is a typing indicator.
type Typing struct {
	From       []byte
	FromDevice int64
	GroupID    []byte // nil for one-to-one
	Started    bool   // false: stopped
	// SentAtMillis is the sender's clock.
	SentAtMillis int64
}

// Group change kinds (GroupChange.Kind).
const (
	GroupJoined  = "joined"  // this account was added (or the group is new here)
	GroupChanged = "changed" // members or name changed
	GroupRemoved = "removed" // this account was removed
)

// GroupChange is a group's new state.
type GroupChange struct {
	GroupID []byte
	Kind    string // GroupJoined, GroupChanged or GroupRemoved
	Name    string
	Admin   []byte
	// Members are the member account ids (16 bytes each, concatenated);
	// MemberCount and Member take them apart.
	Members []byte
	// Added and Removed are the accounts that joined and left with
	// this change (GroupChanged; 16 bytes each, concatenated).
	Added, Removed []byte
	// From is the account that sent the change (the admin, or this
	// account from another device); FromDevice its device.
	From       []byte
	FromDevice int64
	// SentAtMillis is the sender's clock.
	SentAtMillis int64
}

// AddedCount is how many accounts the change added.
func (g *GroupChange) AddedCount() int { return len(g.Added) / 16 }

// AddedMember returns the i-th account the change added.
func (g *GroupChange) AddedMember(i int) []byte { return g.Added[i*16 : (i+1)*16] }

// RemovedCount is how many accounts the change removed.
func (g *GroupChange) RemovedCount() int { return len(g.Removed) / 16 }

// RemovedMember returns the i-th account the change removed.
func (g *GroupChange) RemovedMember(i int) []byte { return g.Removed[i*16 : (i+1)*16] }

// MemberCount is how many members the group has.
func (g *GroupChange) MemberCount() int { return len(g.Members) / 16 }

// Member returns the i-th member's account id.
func (g *GroupChange) Member(i int) []byte { return g.Members[i*16 : (i+1)*16] }

// DeviceChange is this account's device list after a change.
type DeviceChange struct {
	ids []uint32
}

// Count is how many devices the account has.
func (d *DeviceChange) Count() int { return len(d.ids) }

// DeviceID returns the i-th device id, ascending.
func (d *DeviceChange) DeviceID(i int) int64 { return int64(d.ids[i]) }
