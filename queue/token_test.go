package queue_test

import (
	"testing"

	"github.com/pigeonhole/pigeonhole/queue"
)

func TestToken(t *testing.T) {
	a := addr(0xab, 4000000000)
	a.Account[15] = 0x01
	got, ok := queue.ParseToken(a.Token())
	if !ok || got != a {
		t.Fatalf("round trip of %q: %+v, %v", a.Token(), got, ok)
	}
	for _, bad := range []string{"", ".", "ab.1", a.Token() + "x", a.Token()[:32] + ".-1", a.Token()[:32] + ".4294967296", "zz" + a.Token()[2:]} {
		if _, ok := queue.ParseToken(bad); ok {
			t.Errorf("ParseToken(%q) accepted", bad)
		}
	}
}
