package messenger

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
	"github.com/pigeonhole/pigeonhole/spec"
)

// receiver is the state of the receive loop.
type receiver struct {
	mu       sync.Mutex
	running  bool
	handler  Handler               // for OnConnection
	pending  map[[32]byte]opened   // events whose handler failed, by envelope
	order    [][32]byte            // pending's keys, oldest first
	receipts map[receiptKey][]byte // delivered receipts owed, ids concatenated
	keyOrder []receiptKey          // receipts' keys, in order
}

// current is the handler of the running receive loop, or nil.
func (r *receiver) current() Handler {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.handler
}

type receiptKey struct{ to, group string }

// maxPending bounds the events kept for envelopes whose handler failed.
const maxPending = 256

// event is one thing for the handler, made from a decrypted envelope.
// It is kept in memory while the handler fails: made again from the
// kept plaintext, a change it announced (a group's new state) would not
// be announced twice.
type event interface{ deliver(h Handler) error }

// opened is an envelope made into an event: inner is the envelope that
// was decrypted (the sealed one's content, for a sealed envelope), whose
// kept plaintext Handled forgets once the handler took the event; nil
// when nothing was decrypted.
type opened struct {
	ev    event
	inner *client.Envelope
}

func (m *Message) deliver(h Handler) error      { return h.OnMessage(m) }
func (r *Receipt) deliver(h Handler) error      { return h.OnReceipt(r) }
func (t *Typing) deliver(h Handler) error       { return h.OnTyping(t) }
func (g *GroupChange) deliver(h Handler) error  { return h.OnGroup(g) }
func (d *DeviceChange) deliver(h Handler) error { return h.OnDevices(d) }
func (d *Delete) deliver(h Handler) error       { return h.OnDelete(d) }
func (d *Dropped) deliver(h Handler) error      { h.OnDropped(d); return nil }

// Run receives until ctx ends or Close is called (then it returns nil),
// or until the relay refuses this device for good (revoked: an error
// wrapping the relay's refusal). It reconnects with backoff whenever the
// connection drops; envelopes not acked come again. Besides calling h,
// it refills one-time prekeys when the relay says they run low, rotates
// the signed prekey on schedule, and sends delivered receipts once the
// queue is drained (after h.OnDrained). When ctx ends it sends the
// delivered receipts still owed and ends the session cleanly, so the
// relay has made every ack durable. Only one Run (or RunUntilDrained)
// at a time.
func (m *Messenger) Run(ctx context.Context, h Handler) error { return m.run(ctx, h, false) }

// RunUntilDrained is Run that returns once everything queued for this
// device has been handled (after h.OnDrained), as an app woken by a
// push does. A connection that was open already (a send opened it) is
// ended first, so the relay's "drained" is about the queue as it is
// now, not as it was when that connection began.
func (m *Messenger) RunUntilDrained(ctx context.Context, h Handler) error {
	return m.run(ctx, h, true)
}

func (m *Messenger) run(ctx context.Context, h Handler, untilDrained bool) error {
	if m.cfg.SendOnly {
		return ErrSendOnly
	}
	r := &m.recv
	r.mu.Lock()
	if r.running {
		r.mu.Unlock()
		return errors.New("messenger: already receiving")
	}
	r.running, r.handler = true, h
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.running, r.handler = false, nil
		r.mu.Unlock()
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if untilDrained {
		// Its "drained" may be stale, still unread from when the queue
		// was empty: a new connection gets a fresh one.
		m.finish(ctx)
	} else if !m.cfg.NoKeySchedule {
		go m.keySchedule(ctx)
	}
	lo, hi := m.cfg.backoff()
	wait := lo
	drained := false
	for {
		ev, err := m.cl.Next(ctx)
		if err != nil {
			if errors.Is(err, client.ErrClosed) {
				return nil
			}
			if ctx.Err() != nil {
				m.wrapUp(ctx)
				return nil
			}
			return err
		}
		if ctx.Err() != nil {
			// Read before the end was noticed (the handler may have
			// ended ctx): not handed over, so not acked; it comes again.
			m.wrapUp(ctx)
			return nil
		}
		switch ev.Kind {
		case client.EventEnvelope:
			env := ev.Envelope
			if err := m.handle(ctx, h, env); err != nil {
				if env.Seq == 0 {
					continue // online-only: nothing to come again
				}
				m.log.Info("envelope not handled (the handler or the local store failed); it stays queued", "err", err, "retry_in", wait)
				if err := m.requeue(ctx, wait); err != nil {
					m.wrapUp(ctx)
					return nil // ctx ended or closed
				}
				wait = min(2*wait, hi)
				continue
			}
			wait = lo
			if env.Seq != 0 {
				if err := m.cl.Ack(env.Seq); err != nil {
					// It comes again and is recognized as a duplicate.
					m.log.Info("ack failed", "err", err)
				}
			}
			if drained && ctx.Err() == nil {
				m.sendReceipts(ctx)
			}
		case client.EventPreKeysLow:
			m.refill(ctx, ev.PreKeysRemaining)
			m.refillKEM(ctx, ev.KemPreKeysRemaining)
		case client.EventDevices:
			if err := h.OnDevices(&DeviceChange{ids: ev.DeviceIDs}); err != nil {
				m.log.Info("device change handler failed", "err", err)
			}
		case client.EventDrained:
			drained = true
			h.OnDrained()
			if ctx.Err() != nil {
				continue // the handler stopped it: Next says so
			}
			m.sendReceipts(ctx)
			if untilDrained {
				m.finish(ctx)
				return nil
			}
		}
	}
}

// requeue leaves the envelope being handled, and all after it, at the
// relay: it ends the session (making earlier acks durable) and waits
// before the next connection gets them again.
func (m *Messenger) requeue(ctx context.Context, wait time.Duration) error {
	m.finish(ctx)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// wrapUp is the end of Run when ctx ended: the delivered receipts owed
// go out, and the session ends cleanly, on a context of their own.
func (m *Messenger) wrapUp(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	m.sendReceipts(ctx)
	m.finish(ctx)
}

// finish ends the current session, if there is one, cleanly, so the
// relay has made every ack durable, and closes the connection; the
// next call dials again.
func (m *Messenger) finish(ctx context.Context) {
	conn := m.cl.Current()
	if conn == nil {
		return
	}
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_ = conn.Finish(fctx)
	conn.Close()
}

// handle decrypts one envelope and gives what it says to h. It returns
// h's error, or the local store's: what cannot be decrypted or read is
// logged and acked (it would never decrypt later).
func (m *Messenger) handle(ctx context.Context, h Handler, env *client.Envelope) error {
	key := e2e.EnvelopeHash(env)
	r := &m.recv
	r.mu.Lock()
	o, ok := r.pending[key]
	r.mu.Unlock()
	if !ok {
		var err error
		if o, err = m.open(ctx, env); err != nil {
			return err
		}
	}
	if o.ev != nil {
		if err := o.ev.deliver(h); err != nil {
			r.hold(key, o)
			return err
		}
		if msg, isMsg := o.ev.(*Message); isMsg && !msg.FromSelf && len(msg.ID) == MessageIDSize && !m.cfg.NoDeliveryReceipts {
			m.oweReceipt(msg.From, msg.GroupID, msg.ID)
		}
	}
	if o.inner != nil {
		// Taken: the plaintext kept for a crash or a failure before
		// this point goes. If that fails, the envelope stays queued
		// and only this step is left for when it comes again (after a
		// crash, though, the handler sees its event twice).
		if err := m.store.Handled(o.inner); err != nil {
			r.hold(key, opened{inner: o.inner})
			return fmt.Errorf("%w: %w", e2e.ErrStorage, err)
		}
	}
	r.release(key)
	return nil
}

// hold keeps what is left to do for the envelope named key, which stays
// queued, for when it comes again (at most maxPending, oldest dropped).
func (r *receiver) hold(key [32]byte, o opened) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pending == nil {
		r.pending = map[[32]byte]opened{}
	}
	if _, ok := r.pending[key]; !ok {
		if len(r.order) >= maxPending {
			delete(r.pending, r.order[0])
			r.order = r.order[1:]
		}
		r.order = append(r.order, key)
	}
	r.pending[key] = o
}

// release forgets what hold kept for key, if anything.
func (r *receiver) release(key [32]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.pending[key]; !ok {
		return
	}
	delete(r.pending, key)
	for i, k := range r.order {
		if k == key {
			r.order = append(r.order[:i], r.order[i+1:]...)
			break
		}
	}
}

func (m *Messenger) oweReceipt(to, group, id []byte) {
	r := &m.recv
	r.mu.Lock()
	defer r.mu.Unlock()
	k := receiptKey{to: string(to), group: string(group)}
	if r.receipts == nil {
		r.receipts = map[receiptKey][]byte{}
	}
	if _, ok := r.receipts[k]; !ok {
		r.keyOrder = append(r.keyOrder, k)
	}
	r.receipts[k] = append(r.receipts[k], id...)
}

// sendReceipts sends the delivered receipts owed, one message per sender
// and conversation. One that cannot be sent is given up: it only costs
// the sender a mark.
func (m *Messenger) sendReceipts(ctx context.Context) {
	r := &m.recv
	r.mu.Lock()
	owed, order := r.receipts, r.keyOrder
	r.receipts, r.keyOrder = nil, nil
	r.mu.Unlock()
	for _, k := range order {
		var group []byte
		if k.group != "" {
			group = []byte(k.group)
		}
		if err := m.sendReceipt(ctx, []byte(k.to), group, owed[k], spec.Receipt_TYPE_DELIVERED); err != nil {
			m.log.Info("delivered receipt not sent", "err", err)
		}
	}
}

// open decrypts env and makes the event for the handler, applying what
// the message does to local state (sender keys, group state) on the way;
// no event when there is nothing to hand over (a duplicate, or nothing
// to show), a *Dropped when the message could not be taken. An error
// means it was not opened, or not all the way, but still can be (the
// store failed, or ctx ended): the envelope is not to be acked. e2e
// keeps the plaintext of a queued envelope from its decryption until
// Handled, so one that comes again after a failure or a crash past the
// decryption is dispatched from that.
func (m *Messenger) open(ctx context.Context, env *client.Envelope) (opened, error) {
	var plain, group []byte
	var err error
	if env.Sealed {
		// The sender is in the seal: decrypted with, and shown as, the
		// account and device its certificate names.
		if env, err = m.OpenSealed(ctx, env); err != nil {
			if retryable(ctx, err) {
				return opened{}, err
			}
			m.log.Warn("dropped a sealed message", "err", err)
			return opened{ev: &Dropped{Reason: DropSealed, Err: err.Error()}}, nil
		}
	}
	if env.Type == e2e.TypeGroup {
		group, plain, err = m.store.DecryptGroup(ctx, env)
	} else {
		plain, err = m.store.Decrypt(ctx, env)
	}
	from := shortID(env.Sender)
	switch {
	case err != nil && retryable(ctx, err):
		return opened{}, err
	case errors.Is(err, e2e.ErrDuplicate):
		return opened{}, nil
	case errors.Is(err, e2e.ErrIdentityChanged):
		m.log.Warn("dropped a message: the sender's identity key changed", "from", from)
		return opened{ev: dropped(env, DropIdentityChanged, err)}, nil
	case errors.Is(err, e2e.ErrNoSenderKey):
		m.log.Warn("dropped a group message: no sender key for it", "from", from)
		return opened{ev: dropped(env, DropNoSenderKey, err)}, nil
	case err != nil:
		m.log.Warn("dropped a message that does not decrypt", "from", from, "err", err)
		return opened{ev: dropped(env, DropUndecryptable, err)}, nil
	}
	ev, err := m.dispatch(ctx, env, plain, group)
	if err != nil {
		return opened{}, err
	}
	return opened{ev: ev, inner: env}, nil
}

// retryable says whether err, from opening an envelope, leaves it to be
// opened again: the local store failed (nothing changed), or ctx ended.
func retryable(ctx context.Context, err error) bool {
	return errors.Is(err, e2e.ErrStorage) || ctx.Err() != nil
}

// dropped is the event for a message from env's sender that was not
// taken, for reason.
func dropped(env *client.Envelope, reason string, err error) *Dropped {
	d := &Dropped{Reason: reason, From: env.Sender, FromDevice: int64(env.SenderDevice)}
	if err != nil {
		d.Err = err.Error()
	}
	return d
}

// shortID is the start of an id, as logs show it.
func shortID(b []byte) string {
	const hexd = "0123456789abcdef"
	n := min(4, len(b))
	out := make([]byte, 0, 2*n)
	for _, c := range b[:n] {
		out = append(out, hexd[c>>4], hexd[c&15])
	}
	return string(out)
}
