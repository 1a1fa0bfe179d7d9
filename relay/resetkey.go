package relay

import (
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"

	"github.com/quic-go/quic-go"
)

// resetKeyLabel separates the stateless reset key from every other use
// of the relay's TLS key.
const resetKeyLabel = "pigeonhole/2 quic stateless reset key"

// statelessResetKey derives the QUIC stateless reset key from the
// certificate's private key (HKDF-SHA256, its own label; the TLS key is
// never used as it is), so it is the same across restarts: a client whose
// relay restarted learns from its next packet that its connection is
// gone, instead of waiting for the idle timeout. Nil (no resets) if the
// key cannot be encoded.
func statelessResetKey(cert tls.Certificate) *quic.StatelessResetKey {
	der, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return nil
	}
	k, err := hkdf.Key(sha256.New, der, nil, resetKeyLabel, len(quic.StatelessResetKey{}))
	if err != nil {
		return nil
	}
	var key quic.StatelessResetKey
	copy(key[:], k)
	return &key
}
