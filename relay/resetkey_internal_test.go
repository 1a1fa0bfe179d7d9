package relay

import (
	"bytes"
	"crypto/ecdsa"
	"testing"
)

// TestStatelessResetKey: the key is the same for the same certificate
// (so a restarted relay resets its old connections), differs between
// certificates, and is not the TLS private key itself.
func TestStatelessResetKey(t *testing.T) {
	dir := t.TempDir()
	cert, err := LoadOrCreateCertificate(dir)
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadOrCreateCertificate(dir)
	if err != nil {
		t.Fatal(err)
	}
	other, err := LoadOrCreateCertificate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	k1, k2, k3 := statelessResetKey(cert), statelessResetKey(again), statelessResetKey(other)
	if k1 == nil || k2 == nil || k3 == nil {
		t.Fatal("no stateless reset key for an ECDSA certificate")
	}
	if *k1 != *k2 {
		t.Fatal("the reset key changed when the same certificate was loaded again")
	}
	if *k1 == *k3 {
		t.Fatal("two certificates gave the same reset key")
	}
	priv, err := cert.PrivateKey.(*ecdsa.PrivateKey).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(priv, k1[:16]) || bytes.Equal(priv, k1[:]) {
		t.Fatal("the reset key is (part of) the TLS private key")
	}
}
