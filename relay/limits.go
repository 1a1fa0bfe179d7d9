package relay

import (
	"net"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter is a set of token buckets keyed by a string (a source address or
// an account id), with idle buckets dropped so the map stays bounded by
// the number of recently active keys.
type limiter struct {
	limit rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

func newLimiter(l Limit) *limiter {
	return &limiter{
		limit:   rate.Every(l.Every),
		burst:   l.Burst,
		buckets: make(map[string]*bucket),
	}
}

// allow takes a token for key. When none is left it returns false and how
// long until one will be.
func (l *limiter) allow(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	b := l.buckets[key]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(l.limit, l.burst)}
		l.buckets[key] = b
	}
	b.last = now
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// sweep drops buckets that have been idle long enough to be full again;
// forgetting them changes nothing. It runs at most once a minute.
func (l *limiter) sweep(now time.Time) {
	if now.Sub(l.swept) < time.Minute {
		return
	}
	l.swept = now
	full := time.Duration(float64(l.burst) / float64(l.limit) * float64(time.Second))
	for k, b := range l.buckets {
		if now.Sub(b.last) > full {
			delete(l.buckets, k)
		}
	}
}

// sourcePrefix is the network prefix that per-source limits are keyed by:
// the first v4bits of an IPv4 address (IPv4-mapped IPv6 counts as IPv4)
// and the first v6bits of an IPv6 address, so that one host, which owns a
// whole IPv6 /64 or many IPv4 addresses of a block, cannot multiply a
// per-address limit by hopping addresses. Bits outside the valid range
// are clamped (0 means the whole family shares one bucket). An address
// that is not IP (never on QUIC) is its own key.
func sourcePrefix(addr net.Addr, v4bits, v6bits int) string {
	var ip net.IP
	switch a := addr.(type) {
	case *net.UDPAddr:
		ip = a.IP
	case *net.TCPAddr:
		ip = a.IP
	case *net.IPAddr:
		ip = a.IP
	}
	if ip == nil {
		if addr == nil {
			return ""
		}
		return addr.Network() + ":" + addr.String()
	}
	if v4 := ip.To4(); v4 != nil {
		bits := min(max(v4bits, 0), 32)
		return v4.Mask(net.CIDRMask(bits, 32)).String() + "/" + strconv.Itoa(bits)
	}
	bits := min(max(v6bits, 0), 128)
	return ip.To16().Mask(net.CIDRMask(bits, 128)).String() + "/" + strconv.Itoa(bits)
}
