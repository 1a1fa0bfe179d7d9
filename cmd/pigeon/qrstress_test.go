package main

import (
	"crypto/rand"
	"encoding/hex"
	"path/filepath"
	"testing"

	"github.com/pigeonhole/pigeonhole/relay/client"
)

// TestQRManyLinkURIs writes and reads back 200 random link URIs: the
// general QR finder alone missed about 4% of such clean codes, which made
// linking fail at random.
func TestQRManyLinkURIs(t *testing.T) {
	dir := t.TempDir()
	for i := range 200 {
		addr, pub, fp := make([]byte, 16), make([]byte, 33), make([]byte, 32)
		rand.Read(addr)
		rand.Read(pub)
		rand.Read(fp)
		pub[0] = 5
		u := client.LinkURI{Relay: "127.0.0.1:40123", Fingerprint: hex.EncodeToString(fp), Address: addr, PublicKey: pub}.String()
		p := filepath.Join(dir, "q.png")
		if err := writeQRPNG(p, u); err != nil {
			t.Fatal(err)
		}
		if got, err := readQRPNG(p); err != nil || got != u {
			t.Fatalf("URI %d: read back %q, %v", i, got, err)
		}
	}
}
