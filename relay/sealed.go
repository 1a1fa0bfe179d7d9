package relay

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/pigeonhole/pigeonhole/keys"
	"github.com/pigeonhole/pigeonhole/queue"
	"github.com/pigeonhole/pigeonhole/spec"
)

// Sealed sender (protocol.md, "Sealed sender"): the relay signs sender
// certificates for authenticated devices, keeps each account's
// unidentified-access verifier, and queues sealed sends that carry no
// sender at all. A sealed send never looks at the connection's identity:
// it may come on a connection with no session, and its abuse limits are
// keyed by the recipient, by the access key (or, for an account that
// lets anyone send, the source network prefix) and, for refusals, by the
// source network prefix.

// AccessDirectory is what the relay needs of the key directory for sealed
// sends. *keys.Store and *jskeys.Store implement it.
type AccessDirectory interface {
	SetUnidentifiedAccess(ctx context.Context, acct keys.AccountID, ua keys.UnidentifiedAccess) error
	UnidentifiedAccess(ctx context.Context, acct keys.AccountID) (keys.UnidentifiedAccess, error)
}

// UseSenderCertificates makes the relay issue sender certificates signed
// with k. Without it, sender_certificate is answered UNSUPPORTED (sealed
// sends still work: the relay never reads a certificate).
func (s *Server) UseSenderCertificates(k *SenderCertKeys) { s.certKeys = k }

// senderCertificate issues a certificate for the authenticated device.
func (c *conn) senderCertificate(id quic.StreamID) (*spec.SenderCertificateResponse, *spec.Error) {
	acct, dev, e := c.waitAuth(c.ctx, id)
	if e != nil {
		return nil, e
	}
	k := c.s.certKeys
	if k == nil {
		return nil, spec.Err(spec.CodeUnsupported, "this relay issues no sender certificates")
	}
	d, err := c.s.keys.Device(c.ctx, acct, dev)
	if err != nil {
		return nil, c.s.keyError("load device", err)
	}
	now := c.s.now()
	cert, err := k.sign(acct, dev, d.IdentityKey, now.Add(c.s.cfg.SenderCertLifetime))
	if err != nil {
		return nil, c.s.internal("sign a sender certificate", err)
	}
	resp := &spec.SenderCertificateResponse{Certificate: cert}
	for _, l := range k.Listed(now, c.s.cfg.SenderCertLifetime) {
		resp.ServerKeys = append(resp.ServerKeys, &spec.ServerCertificateKey{KeyId: l.ID, PublicKey: l.Public()})
	}
	return resp, nil
}

// setUnidentifiedAccess sets or rotates the account's access verifier.
func (c *conn) setUnidentifiedAccess(id quic.StreamID, r *spec.SetUnidentifiedAccessRequest) *spec.Error {
	acct, _, e := c.waitAuth(c.ctx, id)
	if e != nil {
		return e
	}
	if n := len(r.Verifier); n != 0 && n != spec.AccessVerifierSize {
		return spec.Err(spec.CodeBadRequest, "verifier must be %d bytes (or empty)", spec.AccessVerifierSize)
	}
	if err := c.s.keys.SetUnidentifiedAccess(c.ctx, acct, keys.UnidentifiedAccess{Verifier: r.Verifier, AllowAnyone: r.AllowAnyone}); err != nil {
		return c.s.keyError("set unidentified access", err)
	}
	return nil
}

// errNoAccess refuses a sealed send; it says the same for an unknown
// account, so that a stranger cannot probe which accounts exist.
func errNoAccess() *spec.Error {
	return spec.Err(spec.CodeUnidentified, "the access key does not open this recipient for sealed sends")
}

// sealedSend queues a sealed message for every device of the recipient,
// authorised by its access key; it never reads the connection's identity.
func (c *conn) sealedSend(r *spec.SealedSendRequest) (*spec.SendResponse, *spec.Error) {
	start := time.Now()
	if len(r.Recipient) != spec.AccountIDSize {
		return nil, spec.Err(spec.CodeBadRequest, "recipient must be %d bytes", spec.AccountIDSize)
	}
	if len(r.AccessKey) != spec.AccessKeySize {
		return nil, spec.Err(spec.CodeBadRequest, "access_key must be %d bytes", spec.AccessKeySize)
	}
	if len(r.ClientMessageId) != spec.ClientMessageIDSize {
		return nil, spec.Err(spec.CodeBadRequest, "client_message_id must be %d bytes", spec.ClientMessageIDSize)
	}
	if len(r.Messages) > c.s.cfg.MaxSendDevices {
		return nil, spec.Err(spec.CodeBadRequest, "at most %d device messages per send", c.s.cfg.MaxSendDevices)
	}
	for _, m := range r.Messages {
		if m.Type != 0 {
			return nil, spec.Err(spec.CodeBadRequest, "a sealed device message has type 0 (its Signal type is inside the seal)")
		}
	}
	source := c.source()
	// Refusals from one network prefix are bounded before the lookup, so
	// guessing keys costs the guesser and not the recipient's budget.
	if ok, wait := c.s.sealedRefusalLimit.peek(source, c.s.now()); !ok {
		c.s.m.limited.WithLabelValues("sealed_refusals").Inc()
		return nil, rateLimited(wait, "too many refused sealed sends from this network")
	}
	recipient := keys.AccountID(r.Recipient)
	share, ok, err := c.s.sealedShare(c.ctx, recipient, r.AccessKey, source)
	if err != nil {
		return nil, c.s.internal("look up unidentified access", err)
	}
	if !ok {
		c.s.sealedRefusalLimit.allow(source, c.s.now())
		return nil, errNoAccess()
	}
	if ok, wait := c.s.sealedRecipientLimit.allow(string(recipient[:]), c.s.now()); !ok {
		c.s.m.limited.WithLabelValues("sealed_recipient").Inc()
		return nil, rateLimited(wait, "too many sealed sends to this recipient")
	}
	if ok, wait := c.s.sealedKeyLimit.allow(string(share[:]), c.s.now()); !ok {
		c.s.m.limited.WithLabelValues("sealed_access_key").Inc()
		return nil, rateLimited(wait, "too many sealed sends with this access key")
	}
	named, e := c.s.checkDeviceMessages(r.Messages)
	if e != nil {
		return nil, e
	}
	current, err := c.s.keys.DeviceIDs(c.ctx, recipient)
	if err != nil {
		return nil, c.s.keyError("look up devices", err)
	}
	if missing, extra := diffDevices(current, named); len(missing)+len(extra) > 0 {
		se := spec.Err(spec.CodeStaleDevices, "the device list is stale: %d missing, %d extra", len(missing), len(extra))
		se.MissingDevices, se.ExtraDevices = missing, extra
		return nil, se
	}
	msgs := make([]queue.Message, len(r.Messages))
	for i, m := range r.Messages {
		msgs[i] = queue.Message{
			To:     addrOf(recipient, m.DeviceId),
			Sender: share,
			Body:   encodeSealedEnvelope(m.Content, r.ClientMessageId),
		}
	}
	c.s.m.sendChecks.Observe(time.Since(start).Seconds())
	return c.commitSend(start, share, 0, r.ClientMessageId, msgs, r.OnlineOnly)
}

// Labels of the sender stand-ins of sealed sends.
const (
	sealedKeyShareLabel    = "pigeonhole/1 sealed share, access key\x00"
	sealedAnyoneShareLabel = "pigeonhole/1 sealed share, anyone\x00"
)

// sealedShare checks a sealed send's access key against the recipient's
// verifier, in constant time, and returns the stand-in for the sender
// that the queue's per-sender share, the per-key rate limit and the
// dedup key use: derived from the access key when it matches, or, for an
// account that lets anyone send, from the source network prefix (a key
// the sender chooses would give it a fresh share per guess). The
// prefix's stand-in is keyed with a secret of this process, so the queue
// on disk holds no hash of an address. ok is false when the send is not
// allowed (an unknown account too).
func (s *Server) sealedShare(ctx context.Context, recipient keys.AccountID, accessKey []byte, source string) (share keys.AccountID, ok bool, err error) {
	ua, err := s.keys.UnidentifiedAccess(ctx, recipient)
	if errors.Is(err, keys.ErrUnknownAccount) {
		return share, false, nil
	}
	if err != nil {
		return share, false, err
	}
	want, err := spec.AccessVerifier(accessKey)
	if err != nil {
		return share, false, nil
	}
	if len(ua.Verifier) == spec.AccessVerifierSize && hmac.Equal(want, ua.Verifier) {
		h := sha256.New()
		h.Write([]byte(sealedKeyShareLabel))
		h.Write(recipient[:])
		h.Write(accessKey)
		copy(share[:], h.Sum(nil))
		return share, true, nil
	}
	if !ua.AllowAnyone {
		return share, false, nil
	}
	m := hmac.New(sha256.New, s.sealedSecret[:])
	m.Write([]byte(sealedAnyoneShareLabel))
	m.Write(recipient[:])
	m.Write([]byte(source))
	copy(share[:], m.Sum(nil))
	return share, true, nil
}

// newSealedSecret is the per-process key of the anyone stand-ins.
func newSealedSecret() (k [32]byte) {
	_, _ = rand.Read(k[:]) // crypto/rand.Read never fails
	return k
}
