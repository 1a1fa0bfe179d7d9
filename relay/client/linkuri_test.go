package client_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/pigeonhole/pigeonhole/relay/client"
)

const (
	testFP   = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	testAddr = "AAECAwQFBgcICQoLDA0ODw"                       // 0x00..0x0f
	testPub  = "BQECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g" // 0x05, 0x01..0x20
)

var testLinkURI = "pigeonhole://link?v=1&relay=relay.example.org%3A4433&fp=" + testFP +
	"&addr=" + testAddr + "&pub=" + testPub

func testLink() client.LinkURI {
	u := client.LinkURI{
		Relay:       "relay.example.org:4433",
		Fingerprint: testFP,
		Address:     make([]byte, 16),
		PublicKey:   make([]byte, 33),
	}
	for i := range u.Address {
		u.Address[i] = byte(i)
	}
	u.PublicKey[0] = 0x05
	for i := 1; i < len(u.PublicKey); i++ {
		u.PublicKey[i] = byte(i)
	}
	return u
}

func sameLink(a, b client.LinkURI) bool {
	return a.Relay == b.Relay && a.Fingerprint == b.Fingerprint &&
		bytes.Equal(a.Address, b.Address) && bytes.Equal(a.PublicKey, b.PublicKey)
}

func TestLinkURIString(t *testing.T) {
	if got := testLink().String(); got != testLinkURI {
		t.Errorf("String() =\n%s\nwant\n%s", got, testLinkURI)
	}
}

func TestLinkURIRoundTrip(t *testing.T) {
	for _, relay := range []string{"relay.example.org:4433", "127.0.0.1:1", "[::1]:65535", "[2001:db8::1]:443", "localhost:8443"} {
		u := testLink()
		u.Relay = relay
		got, err := client.ParseLinkURI(u.String())
		if err != nil {
			t.Fatalf("ParseLinkURI(%s): %v", u, err)
		}
		if !sameLink(got, u) {
			t.Errorf("round trip of %s: got %+v, want %+v", u, got, u)
		}
	}
}

func TestParseLinkURIAnyOrder(t *testing.T) {
	s := "pigeonhole://link?pub=" + testPub + "&addr=" + testAddr + "&fp=" + testFP +
		"&relay=relay.example.org:4433&v=1"
	got, err := client.ParseLinkURI(s)
	if err != nil {
		t.Fatal(err)
	}
	if !sameLink(got, testLink()) {
		t.Errorf("got %+v, want %+v", got, testLink())
	}
}

func TestParseLinkURIRejects(t *testing.T) {
	const (
		good  = "pigeonhole://link?"
		relay = "&relay=relay.example.org%3A4433"
		fp    = "&fp=" + testFP
		addr  = "&addr=" + testAddr
		pub   = "&pub=" + testPub
		tail  = relay + fp + addr + pub
	)
	withRelay := func(r string) string { return good + "v=1&relay=" + r + fp + addr + pub }
	tests := []struct {
		name, uri, part string
	}{
		{"scheme", "https://link?v=1" + tail, "scheme"},
		{"upper scheme", "PIGEONHOLE://link?v=1" + tail, "scheme"},
		{"no scheme", "link?v=1" + tail, "scheme"},
		{"host", "pigeonhole://device?v=1" + tail, "host"},
		{"host with port", "pigeonhole://link:1?v=1" + tail, "host"},
		{"user info", "pigeonhole://me@link?v=1" + tail, "host"},
		{"path", "pigeonhole://link/x?v=1" + tail, "path"},
		{"slash", "pigeonhole://link/?v=1" + tail, "path"},
		{"fragment", good + "v=1" + tail + "#x", "fragment"},
		{"no query", "pigeonhole://link", "v: missing"},
		{"v=2", good + "v=2" + tail, "v:"},
		{"v empty", good + "v=" + tail, "v:"},
		{"missing v", good + tail[1:], "v: missing"},
		{"missing relay", good + "v=1" + fp + addr + pub, "relay: missing"},
		{"missing fp", good + "v=1" + relay + addr + pub, "fp: missing"},
		{"missing addr", good + "v=1" + relay + fp + pub, "addr: missing"},
		{"missing pub", good + "v=1" + relay + fp + addr, "pub: missing"},
		{"duplicate v", good + "v=1&v=1" + tail, "v: duplicate"},
		{"duplicate pub", good + "v=1" + tail + pub, "pub: duplicate"},
		{"unknown", good + "v=1" + tail + "&x=1", "unknown parameter"},
		{"no value", good + "v" + tail, "v: no value"},
		{"empty parameter", good + "v=1&" + tail, "empty parameter"},
		{"bad escape", withRelay("a%zz"), "relay:"},
		{"relay no port", withRelay("relay.example.org"), "relay:"},
		{"relay port 0", withRelay("relay.example.org%3A0"), "relay: port"},
		{"relay port 65536", withRelay("relay.example.org%3A65536"), "relay: port"},
		{"relay port name", withRelay("relay.example.org%3Ahttps"), "relay: port"},
		{"relay port leading zero", withRelay("relay.example.org%3A0443"), "relay: port"},
		{"relay port sign", withRelay("relay.example.org%3A%2B443"), "relay: port"},
		{"relay empty host", withRelay("%3A443"), "relay: host"},
		{"relay bad host", withRelay("relay_1.example%3A443"), "relay: host"},
		{"relay space", withRelay("relay+example%3A443"), "relay: host"},
		{"relay zone", withRelay("%5Bfe80%3A%3A1%25eth0%5D%3A443"), "relay: IPv6 zone"},
		{"relay bracketed name", withRelay("%5Brelay.example.org%5D%3A443"), "relay:"},
		{"fp short", good + "v=1" + relay + "&fp=" + testFP[2:] + addr + pub, "fp:"},
		{"fp upper", good + "v=1" + relay + "&fp=" + strings.ToUpper(testFP) + addr + pub, "fp:"},
		{"fp not hex", good + "v=1" + relay + "&fp=" + strings.Repeat("g", 64) + addr + pub, "fp:"},
		{"addr short", good + "v=1" + relay + fp + "&addr=AAECAwQFBgcICQoLDA0O" + pub, "addr: 15 bytes"},
		{"addr long", good + "v=1" + relay + fp + "&addr=AAECAwQFBgcICQoLDA0ODxA" + pub, "addr: 17 bytes"},
		{"addr padded", good + "v=1" + relay + fp + "&addr=" + testAddr + "%3D%3D" + pub, "addr:"},
		{"addr std base64", good + "v=1" + relay + fp + "&addr=+/ECAwQFBgcICQoLDA0ODw" + pub, "addr:"},
		{"addr newline", good + "v=1" + relay + fp + "&addr=AAECAwQFBgcI%0ACQoLDA0ODw" + pub, "addr:"},
		{"pub short", good + "v=1" + relay + fp + addr + "&pub=" + testAddr, "pub: 16 bytes"},
		{"pub key type", good + "v=1" + relay + fp + addr + "&pub=BgECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g", "pub: key type"},
		{"too long", good + "v=1" + tail + strings.Repeat("&", 512), "length"},
		{"relay label too long", withRelay(strings.Repeat("a", 64) + ".example%3A443"), "relay: host"},
		{"relay name too long", withRelay(strings.Repeat("abc.", 63) + "ab%3A443"), "relay: host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.ParseLinkURI(tt.uri)
			if !errors.Is(err, client.ErrBadLinkURI) {
				t.Fatalf("ParseLinkURI(%q) = %v, want ErrBadLinkURI", tt.uri, err)
			}
			if !strings.Contains(err.Error(), tt.part) {
				t.Errorf("error %q does not mention %q", err, tt.part)
			}
		})
	}
}

func FuzzParseLinkURI(f *testing.F) {
	f.Add(testLinkURI)
	f.Add("pigeonhole://link?pub=" + testPub + "&addr=" + testAddr + "&fp=" + testFP + "&relay=[::1]:1&v=1")
	f.Add("pigeonhole://link?v=1&relay=%5B2001%3Adb8%3A%3A1%5D%3A443&fp=" + testFP + "&addr=" + testAddr + "&pub=" + testPub)
	f.Fuzz(func(t *testing.T, s string) {
		u, err := client.ParseLinkURI(s)
		if err != nil {
			if !errors.Is(err, client.ErrBadLinkURI) {
				t.Fatalf("error %v does not wrap ErrBadLinkURI", err)
			}
			return
		}
		again, err := client.ParseLinkURI(u.String())
		if err != nil {
			t.Fatalf("ParseLinkURI(%q) ok but its String %q fails: %v", s, u, err)
		}
		if !sameLink(again, u) {
			t.Fatalf("round trip of %q: got %+v, want %+v", s, again, u)
		}
	})
}
