package queue

import "errors"

// Errors returned by the Store.
var (
	// ErrQueueFull means a recipient device's queue is at its count or
	// byte quota. The send stored nothing.
	ErrQueueFull = errors.New("queue: a recipient queue is full")
	// ErrSenderShare means the sending account already has its share
	// (Config.SenderMaxCount or SenderMaxBytes) of a recipient device's
	// queue. The send stored nothing; other senders are not affected.
	ErrSenderShare = errors.New("queue: the sender's share of a recipient queue is used up")
	// ErrEmpty means an append named no messages.
	ErrEmpty = errors.New("queue: no messages")
	// ErrTooLarge means one message is bigger than a device's whole byte
	// quota.
	ErrTooLarge = errors.New("queue: message larger than the queue quota")
)
