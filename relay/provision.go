package relay

import (
	"crypto/rand"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/pigeonhole/pigeonhole/spec"
)

// MaxProvisioningBytes bounds a provisioning message's body.
const MaxProvisioningBytes = 64 << 10

// provTable holds the open provisioning streams by address, and how many
// each source prefix has open.
type provTable struct {
	mu     sync.Mutex
	m      map[[16]byte]*provSlot
	source map[string]int // open streams per source prefix, until close
}

// provSlot is one open provisioning stream's mailbox.
type provSlot struct {
	msg    chan provMsg  // capacity 1: one message per address
	left   chan struct{} // closed when the stream's handler stops waiting
	source string        // the opener's source prefix
}

// provMsg is a message for a slot and where to say whether the new device
// got it.
type provMsg struct {
	body []byte
	done chan error
}

// Why provTable.open refused.
const (
	provOpened     = iota
	provFull       // max are open on the relay
	provSourceFull // perSource are open from the source prefix
)

// open registers a new address for a stream from source, unless max are
// open on the relay or perSource from that source.
func (t *provTable) open(source string, max, perSource int) ([16]byte, *provSlot, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = make(map[[16]byte]*provSlot)
		t.source = make(map[string]int)
	}
	if t.source[source] >= perSource {
		return [16]byte{}, nil, provSourceFull
	}
	if len(t.m) >= max {
		return [16]byte{}, nil, provFull
	}
	var addr [16]byte
	for {
		_, _ = rand.Read(addr[:])
		if _, taken := t.m[addr]; !taken {
			break
		}
	}
	slot := &provSlot{msg: make(chan provMsg, 1), left: make(chan struct{}), source: source}
	t.m[addr] = slot
	t.source[source]++
	return addr, slot, provOpened
}

// close removes the address and gives its source's share back; a sender
// still waiting learns the device is gone.
func (t *provTable) close(addr [16]byte, slot *provSlot) {
	t.mu.Lock()
	if t.m[addr] == slot {
		delete(t.m, addr)
	}
	if t.source[slot.source]--; t.source[slot.source] <= 0 {
		delete(t.source, slot.source)
	}
	t.mu.Unlock()
	close(slot.left)
}

// take claims the address for one message: it is gone for everyone else.
func (t *provTable) take(addr [16]byte) *provSlot {
	t.mu.Lock()
	defer t.mu.Unlock()
	slot := t.m[addr]
	delete(t.m, addr)
	return slot
}

// runProvisioning serves a provisioning stream: it gives the new device an
// address and waits, at most ProvisioningLifetime, for the one message a
// primary device sends to it.
func (c *conn) runProvisioning(st *quic.Stream) {
	defer st.CancelRead(0)
	write := func(ev *spec.ProvisioningEvent) error {
		_ = st.SetWriteDeadline(time.Now().Add(c.s.cfg.AuthWait))
		return spec.WriteFrame(st, ev)
	}
	refuse := func(e *spec.Error) {
		c.s.m.requests.WithLabelValues("open_provisioning", spec.Code(e.Code).String()).Inc()
		_ = write(&spec.ProvisioningEvent{Body: &spec.ProvisioningEvent_Error{Error: e}})
		_ = st.Close()
	}
	c.mu.Lock()
	busy := c.provOpen
	c.provOpen = true
	c.mu.Unlock()
	if busy {
		refuse(spec.Err(spec.CodeRateLimited, "this connection already has a provisioning stream"))
		return
	}
	defer func() {
		c.mu.Lock()
		c.provOpen = false
		c.mu.Unlock()
	}()
	source := c.source()
	undo, ok, wait := c.s.provLimit.take(source, c.s.now())
	if !ok {
		refuse(rateLimited(wait, "too many provisioning streams from this network"))
		return
	}
	addr, slot, why := c.s.prov.open(source, c.s.cfg.MaxProvisioning, c.s.cfg.MaxProvisioningPerSource)
	switch why {
	case provSourceFull:
		// A stream that opens nothing costs no token: the source may
		// open one as soon as one of its own closes.
		undo()
		c.s.m.limited.WithLabelValues("provisioning_source").Inc()
		refuse(rateLimited(60*time.Second, "this network has %d devices linking at once, the most allowed; finish or cancel one first", c.s.cfg.MaxProvisioningPerSource))
		return
	case provFull:
		undo()
		refuse(rateLimited(60*time.Second, "too many devices are linking right now; try again in a minute"))
		return
	}
	defer c.s.prov.close(addr, slot)
	c.s.m.requests.WithLabelValues("open_provisioning", spec.CodeOK.String()).Inc()
	expires := c.s.now().Add(c.s.cfg.ProvisioningLifetime)
	if write(&spec.ProvisioningEvent{Body: &spec.ProvisioningEvent_Address{Address: &spec.ProvisioningAddress{
		Address: addr[:], ExpiresMs: expires.UnixMilli(),
	}}}) != nil {
		return
	}
	c.establish() // an open provisioning stream ends the auth deadline
	// The client sends nothing more; its FIN or reset ends the wait.
	gone := make(chan struct{})
	go func() {
		var b [1]byte
		_, _ = st.Read(b[:])
		close(gone)
	}()
	timer := time.NewTimer(c.s.cfg.ProvisioningLifetime)
	defer timer.Stop()
	select {
	case m := <-slot.msg:
		err := write(&spec.ProvisioningEvent{Body: &spec.ProvisioningEvent_Message{Message: &spec.ProvisioningMessage{Body: m.body}}})
		if err == nil {
			err = st.Close()
		}
		m.done <- err
	case <-timer.C:
		_ = write(&spec.ProvisioningEvent{Body: &spec.ProvisioningEvent_Error{Error: spec.Err(spec.CodeUnknownAddress, "the provisioning address expired; show a new code")}})
		_ = st.Close()
	case <-gone:
	case <-c.ctx.Done():
	}
}

// provision forwards a primary device's opaque message to a provisioning
// address and answers once the message is written to the new device's
// stream.
func (c *conn) provision(id quic.StreamID, r *spec.ProvisionRequest) *spec.Error {
	if _, _, e := c.waitAuth(c.ctx, id); e != nil {
		return e
	}
	if len(r.Address) != 16 {
		return spec.Err(spec.CodeBadRequest, "a provisioning address is 16 bytes")
	}
	if len(r.Body) == 0 {
		return spec.Err(spec.CodeBadRequest, "empty provisioning message")
	}
	if len(r.Body) > MaxProvisioningBytes {
		return spec.Err(spec.CodeEnvelopeTooLarge, "a provisioning message is at most %d bytes", MaxProvisioningBytes)
	}
	gone := spec.Err(spec.CodeUnknownAddress, "no new device is waiting at this address (it expired, left or was used)")
	slot := c.s.prov.take([16]byte(r.Address))
	if slot == nil {
		return gone
	}
	done := make(chan error, 1)
	slot.msg <- provMsg{body: r.Body, done: done}
	timer := time.NewTimer(c.s.cfg.AuthWait)
	defer timer.Stop()
	select {
	case err := <-done:
		if err != nil {
			return gone
		}
		return nil
	case <-slot.left:
		// The stream's handler may have taken the message just before
		// it stopped; its answer decides.
		select {
		case err := <-done:
			if err == nil {
				return nil
			}
		default:
		}
		return gone
	case <-timer.C:
		return gone
	case <-c.ctx.Done():
		return spec.Err(spec.CodeShuttingDown, "connection closing")
	}
}
