package relay

import (
	"net"
	"testing"
)

func TestSourcePrefix(t *testing.T) {
	udp := func(s string) net.Addr { return &net.UDPAddr{IP: net.ParseIP(s), Port: 4433} }
	for _, tc := range []struct {
		addr   net.Addr
		v4, v6 int
		want   string
	}{
		{udp("192.0.2.77"), 32, 64, "192.0.2.77/32"},
		{udp("192.0.2.77"), 24, 64, "192.0.2.0/24"},
		{udp("127.0.0.3"), 8, 64, "127.0.0.0/8"},
		{udp("::ffff:192.0.2.77"), 24, 64, "192.0.2.0/24"},
		{udp("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), 32, 64, "2001:db8:1:2::/64"},
		{udp("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), 32, 48, "2001:db8:1::/48"},
		{udp("2001:db8::1"), 32, 200, "2001:db8::1/128"},
		{udp("192.0.2.77"), -1, 64, "0.0.0.0/0"},
		{nil, 32, 64, ""},
	} {
		if got := sourcePrefix(tc.addr, tc.v4, tc.v6); got != tc.want {
			t.Errorf("sourcePrefix(%v, %d, %d) = %q, want %q", tc.addr, tc.v4, tc.v6, got, tc.want)
		}
	}
	// Two hosts of one /64 share a key; the next /64 does not.
	a := sourcePrefix(udp("2001:db8:0:1::1"), 32, 64)
	b := sourcePrefix(udp("2001:db8:0:1:ffff::2"), 32, 64)
	c := sourcePrefix(udp("2001:db8:0:2::1"), 32, 64)
	if a != b || a == c {
		t.Fatalf("/64 keys: %q %q %q", a, b, c)
	}
}
