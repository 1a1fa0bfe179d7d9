package relay

import (
	"context"
	"time"

	"github.com/pigeonhole/pigeonhole/keys"
	"github.com/pigeonhole/pigeonhole/queue"
)

// KeyDirectory is what the relay needs of the key directory. *keys.Store
// implements it.
type KeyDirectory interface {
	AccessDirectory // sealed sends (sealed.go)
	CreateAccount(ctx context.Context, dev keys.Device, prekeys []keys.PreKey) (keys.AccountID, error)
	Device(ctx context.Context, acct keys.AccountID, id uint32) (keys.Device, error)
	DeviceIDs(ctx context.Context, acct keys.AccountID) ([]uint32, error)
	AddPreKeys(ctx context.Context, acct keys.AccountID, id uint32, pks []keys.PreKey) (int, error)
	PreKeyCount(ctx context.Context, acct keys.AccountID, id uint32) (int, error)
	RotateSignedPreKey(ctx context.Context, acct keys.AccountID, id uint32, spk keys.SignedPreKey) error
	FetchBundles(ctx context.Context, acct keys.AccountID, mayClaim func(device uint32) bool) ([]keys.Bundle, error)
	Devices(ctx context.Context, acct keys.AccountID) ([]keys.Device, error)
	RemoveDevice(ctx context.Context, acct keys.AccountID, id uint32) error
	CreateLinkCode(ctx context.Context, acct keys.AccountID, ttl time.Duration) ([]byte, time.Time, error)
	LinkDevice(ctx context.Context, acct keys.AccountID, code []byte, dev keys.Device, prekeys []keys.PreKey) (uint32, error)
	Seen(ctx context.Context, acct keys.AccountID, id uint32, t time.Time) error
	AddKemPreKeys(ctx context.Context, acct keys.AccountID, id uint32, kpks []keys.KemPreKey) (int, error)
	KemPreKeyCount(ctx context.Context, acct keys.AccountID, id uint32) (int, bool, error)
	RotateKemLastResort(ctx context.Context, acct keys.AccountID, id uint32, k keys.KemPreKey) error
}

// Queues is what the relay needs of the per-device queues. *queue.Store
// implements it.
type Queues interface {
	Append(ctx context.Context, dedupKey []byte, msgs []queue.Message) (queue.AppendResult, error)
	Read(ctx context.Context, a queue.Address, after uint64, maxCount, maxBytes int) ([]queue.Item, error)
	Ack(ctx context.Context, a queue.Address, seqs []uint64) (int, error)
	Flush(ctx context.Context) error
	// WatchFunc calls f whenever messages for a may have become
	// readable; f must return at once (sessions use it to schedule
	// delivery without a goroutine waiting per session).
	WatchFunc(a queue.Address, f func()) (cancel func())
	DeleteDevice(ctx context.Context, a queue.Address) error
}

var (
	_ KeyDirectory = (*keys.Store)(nil)
	_ Queues       = (*queue.Store)(nil)
)
