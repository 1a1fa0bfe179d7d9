package relay

import (
	"encoding/binary"
	"math"
	"net"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/pigeonhole/pigeonhole/keys"
	"github.com/pigeonhole/pigeonhole/spec"
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
	_, ok, wait := l.take(key, now)
	return ok, wait
}

// peek reports whether key has a token left, without taking it.
func (l *limiter) peek(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		return true, 0
	}
	if l.limit == rate.Inf || b.lim.TokensAt(now) >= 1 {
		return true, 0
	}
	r := b.lim.ReserveN(now, 1)
	d := r.DelayFrom(now)
	r.CancelAt(now)
	return false, d
}

// take is allow that also returns, when it took a token, a function that
// puts the token back (for a request that a later limit refuses, so that
// the refusal does not cost it here too).
func (l *limiter) take(key string, now time.Time) (undo func(), ok bool, wait time.Duration) {
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
		return nil, false, d
	}
	return func() { r.CancelAt(now) }, true, 0
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

// source is the key of the connection's per-source limits: its network
// prefix (Config.IPv4PrefixBits, Config.IPv6PrefixBits).
func (c *conn) source() string {
	return sourcePrefix(c.qc.RemoteAddr(), c.s.cfg.IPv4PrefixBits, c.s.cfg.IPv6PrefixBits)
}

// rateLimited is the RATE_LIMITED error with its retry_after_ms (at least
// 1 ms, so a client always sees a hint).
func rateLimited(wait time.Duration, format string, args ...any) *spec.Error {
	e := spec.Err(spec.CodeRateLimited, format, args...)
	e.RetryAfterMs = uint32(min(max(wait.Milliseconds(), 1), math.MaxUint32))
	return e
}

// claimKey is the key of a target device's bucket of one-time prekey
// claims.
func claimKey(acct keys.AccountID, dev uint32) string {
	var k [len(acct) + 4]byte
	copy(k[:], acct[:])
	binary.BigEndian.PutUint32(k[len(acct):], dev)
	return string(k[:])
}
