package messenger

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
	"github.com/pigeonhole/pigeonhole/spec"
)

// Sealed sender (protocol.md, "Sealed sender", "Sealed sends"): a send to
// another account whose access key this device holds goes sealed, on a
// connection dialled for it that never authenticates, so the relay
// learns no sender. Every Content this device sends carries this
// account's access key, so contacts learn it (and a new one) without a
// message of its own.

// Why a send went identified (SendResult.IdentifiedReason), as cmd/pigeon
// -v says it.
const (
	ReasonNoAccessKey  = "no access key yet"
	ReasonTooLarge     = "too large to seal: over 16 KiB"
	ReasonUnsupported  = "the relay does not take sealed sends"
	ReasonKeyRefused   = "the relay refused its access key"
	sealedFrameBytes   = 16<<10 - 32 // a frame without a session, less the request id and header
	certRenewBeforeExp = time.Hour   // a cached certificate is replaced this long before it expires
)

// errTooLargeToSeal means a sealed request would be over the 16 KiB a
// connection without a session may send: it goes identified.
var errTooLargeToSeal = errors.New("messenger: too large for a sealed send")

// getAccessKey reads a 16-byte key record: nil when there is none (or it
// is not a key, then ignored as if absent).
func (m *Messenger) getAccessKey(key string) []byte {
	b, err := m.store.AccessKeys().Get(key)
	if err != nil || len(b) != spec.AccessKeySize {
		return nil
	}
	return b
}

func contactKeyRecord(acct []byte) string { return contactAccessKeysDir + hex.EncodeToString(acct) }

// ownAccessKey is this account's access key, nil if this device has none
// (a linked device before a message from its account carried it).
func (m *Messenger) ownAccessKey() []byte { return m.getAccessKey(ownAccessKeyRecord) }

// contactAccessKey is the access key account acct shared, nil if none
// came yet.
func (m *Messenger) contactAccessKey(acct []byte) []byte {
	return m.getAccessKey(contactKeyRecord(acct))
}

// dropContactAccessKey forgets acct's access key (the relay refused it:
// acct rotated it), so sends go identified until a new one comes.
func (m *Messenger) dropContactAccessKey(acct []byte) {
	if err := m.store.AccessKeys().Delete(contactKeyRecord(acct)); err != nil {
		m.log.Warn("could not forget a refused access key", "account", shortID(acct), "err", err)
	}
}

// LearnAccessKey keeps the access key (Content.access_key) a message
// from account from carried: a contact's, for sealed sends to it, or,
// on a device of this account that has none (a linked one), the
// account's own. It never replaces this account's own key. Run does
// this for every message it decrypts; a Go program with a receive loop
// of its own calls it.
func (m *Messenger) LearnAccessKey(from, key []byte) error {
	if len(key) != spec.AccessKeySize || len(from) != spec.AccountIDSize {
		return nil
	}
	rec := contactKeyRecord(from)
	if bytes.Equal(from, m.store.AccountID()) {
		if m.ownAccessKey() != nil {
			return nil
		}
		rec = ownAccessKeyRecord
	} else if bytes.Equal(m.contactAccessKey(from), key) {
		return nil
	}
	if err := m.store.AccessKeys().Put(rec, key); err != nil {
		return fmt.Errorf("messenger: keep an access key: %w", err)
	}
	return nil
}

// setUpAccessKey makes this new account's access key and sets its
// verifier on the relay; the key is kept only once the relay took it,
// so contacts are never given a key the relay would refuse.
func (m *Messenger) setUpAccessKey(ctx context.Context) error {
	key, err := e2e.NewAccessKey()
	if err != nil {
		return fmt.Errorf("messenger: %w", err)
	}
	// On a send-only session of its own: the Messenger's connection
	// would be a receiving one, and the relay would count the device
	// connected before the app receives.
	creds, err := m.store.Credentials()
	if err != nil {
		return fmt.Errorf("messenger: %w", err)
	}
	conn, err := m.dial(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.Authenticate(ctx, creds, 0); err != nil {
		return fmt.Errorf("messenger: authenticate: %w", err)
	}
	if err := conn.SetUnidentifiedAccess(ctx, key, false); err != nil {
		return fmt.Errorf("messenger: %w", err)
	}
	_ = conn.Finish(ctx)
	return m.store.AccessKeys().Put(ownAccessKeyRecord, key)
}

// withAccessKey returns plain (an encoded spec.Content) carrying this
// account's access key, when this device has it.
func (m *Messenger) withAccessKey(plain []byte) []byte {
	key := m.ownAccessKey()
	if key == nil {
		return plain
	}
	var c spec.Content
	if err := proto.Unmarshal(plain, &c); err != nil {
		return plain
	}
	c.AccessKey = key
	return encode(&c)
}

// certRecord is the cached sender certificate.
type certRecord struct {
	Raw       []byte `json:"raw"`
	ExpiresMs int64  `json:"expires_ms"`
}

// senderCertificate returns this device's sender certificate: the cached
// one while it is good for more than certRenewBeforeExp, else a new one
// from the relay (authenticated), whose server keys it pins.
func (m *Messenger) senderCertificate(ctx context.Context) ([]byte, error) {
	var cr certRecord
	if b, err := m.store.Get(senderCertRecord); err == nil && b != nil && json.Unmarshal(b, &cr) == nil &&
		len(cr.Raw) > 0 && time.Until(time.UnixMilli(cr.ExpiresMs)) > certRenewBeforeExp {
		return cr.Raw, nil
	}
	var cert *client.SenderCertificate
	var keys []client.ServerKey
	err := m.conn(ctx, func(c *client.Conn) error {
		var err error
		cert, keys, err = c.SenderCertificate(ctx)
		return err
	})
	if err != nil {
		return nil, err // a refusal stays a *client.Error: unsealable reads its code
	}
	if err := m.pinServerKeys(keys); err != nil {
		return nil, err
	}
	b, _ := json.Marshal(certRecord{Raw: cert.Raw, ExpiresMs: cert.Expires.UnixMilli()})
	if err := m.store.Put(senderCertRecord, b); err != nil {
		return nil, err
	}
	return cert.Raw, nil
}

// serverKeys returns the pinned server certificate keys.
func (m *Messenger) serverKeys() e2e.ServerKeys {
	keys := e2e.ServerKeys{}
	b, err := m.store.Get(pinnedServerKeyRecord)
	if err != nil || b == nil {
		return keys
	}
	var pinned map[string]string
	if json.Unmarshal(b, &pinned) != nil {
		return keys
	}
	for id, h := range pinned {
		n, err1 := strconv.ParseUint(id, 10, 32)
		pub, err2 := hex.DecodeString(h)
		if err1 == nil && err2 == nil && len(pub) == ed25519.PublicKeySize {
			keys[uint32(n)] = pub
		}
	}
	return keys
}

// pinServerKeys adds the server keys a certificate response listed to
// the pinned ones (they came over the connection whose TLS certificate
// is pinned). A key id already pinned keeps its key.
func (m *Messenger) pinServerKeys(listed []client.ServerKey) error {
	keys := m.serverKeys()
	changed := false
	for _, k := range listed {
		if _, ok := keys[k.ID]; !ok {
			keys[k.ID] = k.PublicKey
			changed = true
		}
	}
	if !changed {
		return nil
	}
	out := map[string]string{}
	for id, pub := range keys {
		out[strconv.FormatUint(uint64(id), 10)] = hex.EncodeToString(pub)
	}
	b, _ := json.Marshal(out)
	return m.store.Put(pinnedServerKeyRecord, b)
}

// OpenSealed opens a sealed envelope and verifies its sender certificate
// against the pinned server keys. When none are pinned yet, or the
// certificate names a key id not pinned (the relay rotated), it fetches
// a new certificate once (which lists the relay's keys) and tries again.
// The envelope it returns names the sender from inside the seal. Run
// does this itself; it is for a Go program with its own receive loop.
func (m *Messenger) OpenSealed(ctx context.Context, env *client.Envelope) (*client.Envelope, error) {
	if keys := m.serverKeys(); len(keys) > 0 {
		opened, err := m.store.OpenSealed(env, keys, time.Now())
		if !errors.Is(err, e2e.ErrCertificate) {
			return opened, err
		}
	}
	if err := m.store.Delete(senderCertRecord); err != nil {
		return nil, err
	}
	if _, err := m.senderCertificate(ctx); err != nil {
		return nil, fmt.Errorf("messenger: fetch the relay's server keys: %w", err)
	}
	return m.store.OpenSealed(env, m.serverKeys(), time.Now())
}

// sealer makes the sealed sends of one send call: it seals each
// device's ciphertext with this device's sender certificate and sends
// them on a connection dialled on first use, which never authenticates
// (the relay closes such a connection at its 10 s auth deadline, and
// one kept for longer would tie the sealed sends on it together), and
// which close ends.
type sealer struct {
	m    *Messenger
	conn *client.Conn
}

// send seals msg's ciphertexts (in place of them) and sends it.
func (s *sealer) send(ctx context.Context, msg *client.SealedMessage) (*client.SendResult, error) {
	cert, err := s.m.senderCertificate(ctx)
	if err != nil {
		return nil, err
	}
	if msg.Devices, err = s.m.store.Seal(msg.Recipient, msg.Devices, cert); err != nil {
		return nil, fmt.Errorf("messenger: %w", err)
	}
	if sealedSize(msg) > sealedFrameBytes {
		return nil, errTooLargeToSeal
	}
	if s.conn == nil {
		if s.conn, err = s.m.dial(ctx); err != nil {
			return nil, err
		}
	}
	return s.conn.SealedSend(ctx, msg)
}

func (s *sealer) close() {
	if s.conn != nil {
		s.conn.Close()
	}
}

// sealedSize is the encoded size of msg's sealed_send request.
func sealedSize(msg *client.SealedMessage) int {
	sr := &spec.SealedSendRequest{Recipient: msg.Recipient, AccessKey: msg.AccessKey, ClientMessageId: msg.ClientMessageID, OnlineOnly: msg.OnlineOnly}
	for _, d := range msg.Devices {
		sr.Messages = append(sr.Messages, &spec.DeviceMessage{DeviceId: d.DeviceID, Type: d.Type, Content: d.Content})
	}
	return proto.Size(&spec.Request{Body: &spec.Request_SealedSend{SealedSend: sr}})
}

// unsealable says why a sealed send to account to that failed with err
// must go identified instead ("" when err is no such reason: nil, or a
// failure of the send itself). When the relay refused to's access key
// (to rotated it), the key is forgotten.
func (m *Messenger) unsealable(to []byte, err error) string {
	var re *client.Error
	refused := errors.As(err, &re)
	switch {
	case errors.Is(err, errTooLargeToSeal) || refused && spec.Code(re.Code) == spec.CodeFrameTooLarge:
		return ReasonTooLarge
	case refused && spec.Code(re.Code) == spec.CodeUnsupported:
		return ReasonUnsupported
	case refused && spec.Code(re.Code) == spec.CodeUnidentified:
		m.dropContactAccessKey(to)
		return ReasonKeyRefused
	}
	return ""
}
