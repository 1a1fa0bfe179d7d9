package relay

import (
	"github.com/quic-go/quic-go"

	"github.com/pigeonhole/pigeonhole/keys"
	"github.com/pigeonhole/pigeonhole/spec"
)

// KEM prekeys (protocol.md, "KEM prekeys"): the key directory checks each
// key's encoding and signature; the relay bounds the request.

// kemPreKeyFrom converts a wire KEM prekey (nil: none). The bytes are
// shared with the request, which is not used after the call.
func kemPreKeyFrom(p *spec.KemPreKey) *keys.KemPreKey {
	if p == nil {
		return nil
	}
	return &keys.KemPreKey{ID: p.GetId(), PublicKey: p.GetPublicKey(), Signature: p.GetSignature()}
}

func (c *conn) uploadKemPreKeys(id quic.StreamID, r *spec.UploadKemPreKeysRequest) (*spec.UploadKemPreKeysResponse, *spec.Error) {
	acct, dev, e := c.waitAuth(c.ctx, id)
	if e != nil {
		return nil, e
	}
	if len(r.KemPrekeys) > maxPreKeysPerRequest {
		return nil, spec.Err(spec.CodeTooManyPreKeys, "at most %d one-time KEM prekeys per request", maxPreKeysPerRequest)
	}
	kpks := make([]keys.KemPreKey, len(r.KemPrekeys))
	for i, p := range r.KemPrekeys {
		kpks[i] = *kemPreKeyFrom(p)
	}
	n, err := c.s.keys.AddKemPreKeys(c.ctx, acct, dev, kpks)
	if err != nil {
		return nil, c.s.keyError("store KEM prekeys", err)
	}
	return &spec.UploadKemPreKeysResponse{Stored: uint32(n)}, nil
}

func (c *conn) rotateLastResortKemPreKey(id quic.StreamID, r *spec.RotateLastResortKemPreKeyRequest) *spec.Error {
	acct, dev, e := c.waitAuth(c.ctx, id)
	if e != nil {
		return e
	}
	if r.KemPrekey == nil {
		return spec.Err(spec.CodeBadRequest, "kem_prekey is required")
	}
	if err := c.s.keys.RotateKemLastResort(c.ctx, acct, dev, *kemPreKeyFrom(r.KemPrekey)); err != nil {
		return c.s.keyError("rotate last-resort KEM prekey", err)
	}
	return nil
}
