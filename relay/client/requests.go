package client

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/pigeonhole/pigeonhole/spec"
)

// PreKey is a Signal one-time prekey's public part.
type PreKey struct {
	ID        uint32
	PublicKey []byte
}

// SignedPreKey is a Signal signed prekey's public part and its signature.
type SignedPreKey struct {
	ID        uint32
	PublicKey []byte
	Signature []byte
}

// Registration is what a new account's first device uploads.
type Registration struct {
	// AuthKey is the device's Ed25519 private key (64 bytes); only its
	// public half and a proof of possession leave the device.
	AuthKey        []byte
	IdentityKey    []byte // Signal identity public key, 33 bytes
	RegistrationID uint32
	SignedPreKey   SignedPreKey
	PreKeys        []PreKey // at most 100
	// KemLastResort is the device's last-resort KEM prekey (optional;
	// see NewKemPreKey). One-time KEM prekeys go up with
	// UploadKemPreKeys once the device is authenticated.
	KemLastResort *KemPreKey
	// EncryptedName is the device's display name, sealed so that only the
	// account's devices can read it (e2e.Device.SealDeviceName; optional,
	// at most 256 bytes). LinkDevice takes it as an argument instead.
	EncryptedName []byte
}

// Account identifies a device of an account.
type Account struct {
	AccountID []byte
	DeviceID  uint32
}

func toSpecPreKeys(pks []PreKey) []*spec.PreKey {
	out := make([]*spec.PreKey, len(pks))
	for i, p := range pks {
		out[i] = &spec.PreKey{Id: p.ID, PublicKey: p.PublicKey}
	}
	return out
}

func toSpecSigned(s SignedPreKey) *spec.SignedPreKey {
	return &spec.SignedPreKey{Id: s.ID, PublicKey: s.PublicKey, Signature: s.Signature}
}

// Register creates an account and its first device.
func (c *Conn) Register(ctx context.Context, r *Registration) (*Account, error) {
	if len(r.AuthKey) != ed25519.PrivateKeySize {
		return nil, errors.New("register: the auth key must be a 64-byte Ed25519 private key")
	}
	priv := ed25519.PrivateKey(r.AuthKey)
	pub := priv.Public().(ed25519.PublicKey)
	proof, err := spec.RegisterProof(c.exporter, pub)
	if err != nil {
		return nil, fmt.Errorf("register: %w", err)
	}
	resp, err := c.roundTrip(ctx, &spec.Request{Body: &spec.Request_Register{Register: &spec.RegisterRequest{
		AuthKey:             pub,
		AuthProof:           ed25519.Sign(priv, proof),
		IdentityKey:         r.IdentityKey,
		RegistrationId:      r.RegistrationID,
		SignedPrekey:        toSpecSigned(r.SignedPreKey),
		Prekeys:             toSpecPreKeys(r.PreKeys),
		LastResortKemPrekey: toSpecKem(r.KemLastResort),
		EncryptedName:       r.EncryptedName,
	}}})
	if err != nil {
		return nil, fmt.Errorf("register: %w", err)
	}
	rr := resp.GetRegister()
	if rr == nil || len(rr.AccountId) != spec.AccountIDSize {
		return nil, errors.New("register: malformed response")
	}
	return &Account{AccountID: rr.AccountId, DeviceID: rr.DeviceId}, nil
}

// UploadPreKeys adds one-time prekeys (at most 100) and returns how many
// the relay now holds for this device.
func (c *Conn) UploadPreKeys(ctx context.Context, pks []PreKey) (int, error) {
	resp, err := c.roundTrip(ctx, &spec.Request{Body: &spec.Request_UploadPrekeys{
		UploadPrekeys: &spec.UploadPreKeysRequest{Prekeys: toSpecPreKeys(pks)},
	}})
	if err != nil {
		return 0, fmt.Errorf("upload prekeys: %w", err)
	}
	return int(resp.GetUploadPrekeys().GetStored()), nil
}

// RotateSignedPreKey replaces this device's signed prekey.
func (c *Conn) RotateSignedPreKey(ctx context.Context, spk SignedPreKey) error {
	_, err := c.roundTrip(ctx, &spec.Request{Body: &spec.Request_RotateSignedPrekey{
		RotateSignedPrekey: &spec.RotateSignedPreKeyRequest{SignedPrekey: toSpecSigned(spk)},
	}})
	if err != nil {
		return fmt.Errorf("rotate signed prekey: %w", err)
	}
	return nil
}

// PreKeyStatus returns how many one-time prekeys the relay holds for this
// device.
func (c *Conn) PreKeyStatus(ctx context.Context) (int, error) {
	resp, err := c.roundTrip(ctx, &spec.Request{Body: &spec.Request_PrekeyStatus{PrekeyStatus: &spec.PreKeyStatusRequest{}}})
	if err != nil {
		return 0, fmt.Errorf("prekey status: %w", err)
	}
	return int(resp.GetPrekeyStatus().GetStored()), nil
}

// DeviceBundle is what a sender needs to start a session with one device.
type DeviceBundle struct {
	DeviceID       uint32
	RegistrationID uint32
	IdentityKey    []byte
	SignedPreKey   SignedPreKey
	// PreKey is nil when the device had no one-time prekeys left.
	PreKey *PreKey
	// KemPreKey is a one-time KEM prekey claimed by this fetch, or the
	// device's last-resort one (KemLastResort); nil when the device has
	// no KEM prekeys (then start the session without PQXDH).
	KemPreKey *KemPreKey
	// KemLastResort says KemPreKey is the device's last-resort one.
	KemLastResort bool
}

// Keys are an account's device bundles, ascending by device id.
type Keys struct {
	AccountID []byte
	Devices   []DeviceBundle
}

// FetchKeys fetches a bundle for every device of an account, claiming one
// one-time prekey of each.
func (c *Conn) FetchKeys(ctx context.Context, account []byte) (*Keys, error) {
	resp, err := c.roundTrip(ctx, &spec.Request{Body: &spec.Request_FetchKeys{FetchKeys: &spec.FetchKeysRequest{AccountId: account}}})
	if err != nil {
		return nil, fmt.Errorf("fetch keys: %w", err)
	}
	fk := resp.GetFetchKeys()
	out := &Keys{AccountID: fk.GetAccountId()}
	for _, d := range fk.GetDevices() {
		b := DeviceBundle{
			DeviceID:       d.DeviceId,
			RegistrationID: d.RegistrationId,
			IdentityKey:    d.IdentityKey,
			SignedPreKey: SignedPreKey{
				ID: d.GetSignedPrekey().GetId(), PublicKey: d.GetSignedPrekey().GetPublicKey(), Signature: d.GetSignedPrekey().GetSignature(),
			},
		}
		if p := d.GetPrekey(); p != nil {
			b.PreKey = &PreKey{ID: p.Id, PublicKey: p.PublicKey}
		}
		if k := d.GetKemPrekey(); k != nil {
			b.KemPreKey = &KemPreKey{ID: k.Id, PublicKey: k.PublicKey, Signature: k.Signature}
			b.KemLastResort = d.KemLastResort
		}
		out.Devices = append(out.Devices, b)
	}
	return out, nil
}

// DeviceMessage is the ciphertext for one recipient device.
type DeviceMessage struct {
	DeviceID uint32
	Type     uint32
	Content  []byte
}

// Message is one send: a ciphertext for every device of the recipient.
type Message struct {
	Recipient []byte
	// ClientMessageID (16 random bytes) makes a retried send land once.
	ClientMessageID []byte
	Devices         []DeviceMessage
	// OnlineOnly delivers only to devices connected now and stores
	// nothing (typing indicators, call signalling).
	OnlineOnly bool
}

// SendResult is the relay's acceptance: the message is durable.
type SendResult struct {
	TimestampMillis int64
	// Duplicate is true when this ClientMessageID had been accepted before.
	Duplicate bool
	// Reached is, for an online-only send, how many devices got it.
	Reached int
}

// Send queues m. It returns only after the relay stored every ciphertext
// durably. A stale device list fails with an *Error whose Code is
// STALE_DEVICES and whose Missing and Extra name the devices.
func (c *Conn) Send(ctx context.Context, m *Message) (*SendResult, error) {
	sr := &spec.SendRequest{Recipient: m.Recipient, ClientMessageId: m.ClientMessageID, OnlineOnly: m.OnlineOnly}
	for _, d := range m.Devices {
		sr.Messages = append(sr.Messages, &spec.DeviceMessage{DeviceId: d.DeviceID, Type: d.Type, Content: d.Content})
	}
	resp, err := c.roundTrip(ctx, &spec.Request{Body: &spec.Request_Send{Send: sr}})
	if err != nil {
		return nil, fmt.Errorf("send: %w", err)
	}
	s := resp.GetSend()
	return &SendResult{TimestampMillis: s.GetTimestampMs(), Duplicate: s.GetDuplicate(), Reached: int(s.GetReached())}, nil
}

// AccountMessage is the ciphertexts for every device of one account in a
// SendMulti.
type AccountMessage struct {
	Recipient []byte
	Devices   []DeviceMessage
}

// MultiMessage is one send to the devices of many accounts, such as a
// group (at most 1,000 device messages by default).
type MultiMessage struct {
	ClientMessageID []byte
	Accounts        []AccountMessage
	OnlineOnly      bool
}

// SendMulti queues m for every named device in one round trip, all or
// nothing. A stale device list for any account fails with an *Error whose
// Code is STALE_DEVICES and whose Stale names every such account.
func (c *Conn) SendMulti(ctx context.Context, m *MultiMessage) (*SendResult, error) {
	mr := &spec.MultiSendRequest{ClientMessageId: m.ClientMessageID, OnlineOnly: m.OnlineOnly}
	for _, a := range m.Accounts {
		am := &spec.AccountMessages{Recipient: a.Recipient}
		for _, d := range a.Devices {
			am.Messages = append(am.Messages, &spec.DeviceMessage{DeviceId: d.DeviceID, Type: d.Type, Content: d.Content})
		}
		mr.Accounts = append(mr.Accounts, am)
	}
	resp, err := c.roundTrip(ctx, &spec.Request{Body: &spec.Request_MultiSend{MultiSend: mr}})
	if err != nil {
		return nil, fmt.Errorf("send: %w", err)
	}
	s := resp.GetMultiSend()
	return &SendResult{TimestampMillis: s.GetTimestampMs(), Duplicate: s.GetDuplicate(), Reached: int(s.GetReached())}, nil
}
