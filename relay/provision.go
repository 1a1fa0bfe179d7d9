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

// provTable holds the open provisioning streams by address.
type provTable struct {
	mu sync.Mutex
	m  map[[16]byte]chan []byte // capacity 1: one message per address
}

// open registers a new address, unless max are open.
func (t *provTable) open(max int) ([16]byte, chan []byte, bool) {
	var addr [16]byte
	_, _ = rand.Read(addr[:])
	ch := make(chan []byte, 1)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = make(map[[16]byte]chan []byte)
	}
	if len(t.m) >= max {
		return addr, nil, false
	}
	t.m[addr] = ch
	return addr, ch, true
}

func (t *provTable) close(addr [16]byte) {
	t.mu.Lock()
	delete(t.m, addr)
	t.mu.Unlock()
}

// deliver hands body to the stream at addr; an address takes one message
// and is then gone.
func (t *provTable) deliver(addr [16]byte, body []byte) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	ch, ok := t.m[addr]
	if !ok {
		return false
	}
	delete(t.m, addr)
	ch <- body
	return true
}

// runProvisioning serves a provisioning stream: it gives the new device an
// address and waits, at most ProvisioningLifetime, for the one message a
// primary device sends to it.
func (c *conn) runProvisioning(st *quic.Stream) {
	defer st.CancelRead(0)
	write := func(ev *spec.ProvisioningEvent) bool {
		_ = st.SetWriteDeadline(time.Now().Add(c.s.cfg.AuthWait))
		return spec.WriteFrame(st, ev) == nil
	}
	addr, ch, ok := c.s.prov.open(c.s.cfg.MaxProvisioning)
	if !ok {
		c.s.m.requests.WithLabelValues("open_provisioning", spec.CodeRateLimited.String()).Inc()
		e := spec.Err(spec.CodeRateLimited, "too many devices are linking right now; try again in a minute")
		e.RetryAfterMs = 60_000
		write(&spec.ProvisioningEvent{Body: &spec.ProvisioningEvent_Error{Error: e}})
		_ = st.Close()
		return
	}
	defer c.s.prov.close(addr)
	c.s.m.requests.WithLabelValues("open_provisioning", spec.CodeOK.String()).Inc()
	expires := c.s.now().Add(c.s.cfg.ProvisioningLifetime)
	if !write(&spec.ProvisioningEvent{Body: &spec.ProvisioningEvent_Address{Address: &spec.ProvisioningAddress{
		Address: addr[:], ExpiresMs: expires.UnixMilli(),
	}}}) {
		return
	}
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
	case body := <-ch:
		if write(&spec.ProvisioningEvent{Body: &spec.ProvisioningEvent_Message{Message: &spec.ProvisioningMessage{Body: body}}}) {
			_ = st.Close()
		}
	case <-timer.C:
		write(&spec.ProvisioningEvent{Body: &spec.ProvisioningEvent_Error{Error: spec.Err(spec.CodeUnknownAddress, "the provisioning address expired; show a new code")}})
		_ = st.Close()
	case <-gone:
	case <-c.ctx.Done():
	}
}

// provision forwards a primary device's opaque message to a provisioning
// address.
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
	if !c.s.prov.deliver([16]byte(r.Address), r.Body) {
		return spec.Err(spec.CodeUnknownAddress, "no new device is waiting at this address (it expired or was used)")
	}
	return nil
}
