package messenger

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Mobile is the binding surface (see the package doc): a Messenger with
// methods gomobile can bind, which take no context. Each call is bounded
// by CallTimeoutMillis and ended early by Close.
type Mobile struct {
	m *Messenger

	mu     sync.Mutex
	ctx    context.Context // ended by Close
	cancel context.CancelFunc
	stop   context.CancelFunc // ends the receive loop Start began
	done   chan struct{}      // closed when that loop returned
}

// CallTimeoutMillis bounds each blocking call of Mobile.
const CallTimeoutMillis = 60000

const callTimeout = CallTimeoutMillis * time.Millisecond

func newMobile(m *Messenger) *Mobile {
	ctx, cancel := context.WithCancel(context.Background())
	return &Mobile{m: m, ctx: ctx, cancel: cancel}
}

// OpenMobile opens the registered device in dir for the relay in cfg.
func OpenMobile(dir string, cfg *Config) (*Mobile, error) {
	m, err := Open(dir, cfg)
	if err != nil {
		return nil, err
	}
	return newMobile(m), nil
}

// RegisterMobile is Register: a new account whose first device lives in
// dir, listed as name. A device whose first KEM prekeys could not be
// uploaded is returned without an error (Start's receive loop uploads
// them).
func RegisterMobile(dir string, cfg *Config, name string) (*Mobile, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	m, err := Register(ctx, dir, cfg, name)
	if err != nil && !errors.Is(err, ErrPreKeysPending) {
		return nil, err
	}
	return newMobile(m), nil
}

func (b *Mobile) call() (context.Context, context.CancelFunc) {
	return context.WithTimeout(b.ctx, callTimeout)
}

// AccountID is this device's account id (16 bytes).
func (b *Mobile) AccountID() []byte { return b.m.AccountID() }

// DeviceID is this device's id in its account.
func (b *Mobile) DeviceID() int64 { return b.m.DeviceID() }

// Send is Messenger.Send of a text; id may be empty (a new one) or the
// id of a send being retried.
func (b *Mobile) Send(to []byte, text string, id []byte) (*SendResult, error) {
	ctx, cancel := b.call()
	defer cancel()
	return b.m.Send(ctx, to, &Content{Text: text, ID: id})
}

// SendGroup is Messenger.SendGroup of a text.
func (b *Mobile) SendGroup(groupID []byte, text string, id []byte) (*SendResult, error) {
	ctx, cancel := b.call()
	defer cancel()
	return b.m.SendGroup(ctx, groupID, &Content{Text: text, ID: id})
}

// SendTyping is Messenger.SendTyping.
func (b *Mobile) SendTyping(to []byte, started bool) (*SendResult, error) {
	ctx, cancel := b.call()
	defer cancel()
	return b.m.SendTyping(ctx, to, started)
}

// SendGroupTyping is Messenger.SendGroupTyping.
func (b *Mobile) SendGroupTyping(groupID []byte, started bool) (*SendResult, error) {
	ctx, cancel := b.call()
	defer cancel()
	return b.m.SendGroupTyping(ctx, groupID, started)
}

// SendReadReceipt is Messenger.SendReadReceipt.
func (b *Mobile) SendReadReceipt(from, groupID, ids []byte) error {
	ctx, cancel := b.call()
	defer cancel()
	return b.m.SendReadReceipt(ctx, from, groupID, ids)
}

// CreateGroup is Messenger.CreateGroup.
func (b *Mobile) CreateGroup(name string, members []byte) ([]byte, error) {
	ctx, cancel := b.call()
	defer cancel()
	return b.m.CreateGroup(ctx, name, members)
}

// ChangeGroup is Messenger.ChangeGroup.
func (b *Mobile) ChangeGroup(groupID, add, remove []byte) error {
	ctx, cancel := b.call()
	defer cancel()
	return b.m.ChangeGroup(ctx, groupID, add, remove)
}

// RenameGroup is Messenger.RenameGroup.
func (b *Mobile) RenameGroup(groupID []byte, name string) error {
	ctx, cancel := b.call()
	defer cancel()
	return b.m.RenameGroup(ctx, groupID, name)
}

// Groups is Messenger.Groups.
func (b *Mobile) Groups() (*GroupList, error) { return b.m.Groups() }

// Group is Messenger.Group.
func (b *Mobile) Group(groupID []byte) (*GroupInfo, error) { return b.m.Group(groupID) }

// ApproveLink is Messenger.ApproveLink.
func (b *Mobile) ApproveLink(uri string) error {
	ctx, cancel := b.call()
	defer cancel()
	return b.m.ApproveLink(ctx, uri)
}

// Start receives in the background (Messenger.Run) until Stop or
// Close; h gets every event. A second Start replaces the first. If
// receiving ends for good (this device was revoked), h.OnConnection gets
// false, the reason and a retry of -1.
func (b *Mobile) Start(h Handler) {
	b.Stop()
	ctx, stop := context.WithCancel(b.ctx)
	done := make(chan struct{})
	b.mu.Lock()
	b.stop, b.done = stop, done
	b.mu.Unlock()
	go func() {
		defer close(done)
		if err := b.m.Run(ctx, h); err != nil {
			h.OnConnection(false, err.Error(), -1)
		}
	}()
}

// Sync receives until everything queued has been handled, then returns:
// for an app woken by a push. Not while Start is receiving.
func (b *Mobile) Sync(h Handler) error {
	ctx, cancel := b.call()
	defer cancel()
	return b.m.RunUntilDrained(ctx, h)
}

// Stop ends the receiving Start began and waits for it.
func (b *Mobile) Stop() {
	b.mu.Lock()
	stop, done := b.stop, b.done
	b.stop, b.done = nil, nil
	b.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}

// Close stops everything; the Mobile cannot be used afterwards.
func (b *Mobile) Close() error {
	b.cancel()
	b.Stop()
	return b.m.Close()
}

// MobileLink is Link for the binding surface: a new device waiting to be
// approved.
type MobileLink struct {
	// URI is what the primary device needs (show it as a QR code).
	URI string
	// CheckCode must match what the primary shows.
	CheckCode string
	l         *Link
}

// StartMobileLink is StartLink.
func StartMobileLink(dir string, cfg *Config, name string) (*MobileLink, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	l, err := StartLink(ctx, dir, cfg, name)
	if err != nil {
		return nil, err
	}
	return &MobileLink{URI: l.URI, CheckCode: l.CheckCode, l: l}, nil
}

// Wait waits (up to timeoutMillis) for the approval and joins the account.
func (l *MobileLink) Wait(timeoutMillis int64) (*Mobile, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(timeoutMillis)*time.Millisecond)
	defer cancel()
	m, err := l.l.Wait(ctx)
	if err != nil && !errors.Is(err, ErrPreKeysPending) {
		return nil, err
	}
	return newMobile(m), nil
}

// Cancel gives the link up.
func (l *MobileLink) Cancel() { l.l.Close() }

// Devices is Messenger.Devices.
func (b *Mobile) Devices() (*DeviceList, error) {
	ctx, cancel := b.call()
	defer cancel()
	return b.m.Devices(ctx)
}

// RevokeDevice is Messenger.RevokeDevice.
func (b *Mobile) RevokeDevice(id int64) error {
	ctx, cancel := b.call()
	defer cancel()
	return b.m.RevokeDevice(ctx, id)
}
