package e2e_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"go.mau.fi/libsignal/ecc"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
)

// link provisions a new device from primary, as device id 2 of its
// account.
func link(t *testing.T, primary *party) *party {
	t.Helper()
	k, _, sealed := sealFor(t, primary.dev)
	p, err := k.Open(sealed)
	if err != nil {
		t.Fatal(err)
	}
	dev, reg := createLinked(t, p, 3)
	if err := dev.Registered(p.AccountID, 2); err != nil {
		t.Fatal(err)
	}
	return &party{dev: dev, reg: reg, acct: p.AccountID}
}

func TestCreateLinked(t *testing.T) {
	primary := newParty(t, 0xa)
	linked := link(t, primary)
	if !bytes.Equal(linked.dev.IdentityKey(), primary.dev.IdentityKey()) || !bytes.Equal(linked.reg.IdentityKey, primary.reg.IdentityKey) {
		t.Fatal("linked device has another identity key")
	}
	if bytes.Equal(linked.reg.AuthKey, primary.reg.AuthKey) {
		t.Fatal("linked device shares the auth key")
	}
	if bytes.Equal(linked.reg.SignedPreKey.PublicKey, primary.reg.SignedPreKey.PublicKey) {
		t.Fatal("linked device shares the signed prekey")
	}
	ik, err := ecc.DecodePoint(linked.reg.IdentityKey, 0)
	if err != nil {
		t.Fatal(err)
	}
	var sig [64]byte
	copy(sig[:], linked.reg.SignedPreKey.Signature)
	if !ecc.VerifySignature(ik, linked.reg.SignedPreKey.PublicKey, sig) {
		t.Fatal("signed prekey does not verify against the identity key")
	}
	if len(linked.reg.PreKeys) != 3 {
		t.Fatalf("%d prekeys", len(linked.reg.PreKeys))
	}
	// The state file reopens like any device's.
	re := reopen(t, linked.dev)
	creds, err := re.Credentials()
	if err != nil || !bytes.Equal(creds.AccountID, primary.acct) || creds.DeviceID != 2 ||
		!bytes.Equal(re.IdentityKey(), primary.dev.IdentityKey()) {
		t.Fatalf("reopened linked device: %+v, %v", creds, err)
	}
}

func TestCreateLinkedRefuses(t *testing.T) {
	primary := newParty(t, 0xa)
	k, _, sealed := sealFor(t, primary.dev)
	p, err := k.Open(sealed)
	if err != nil {
		t.Fatal(err)
	}
	if onMemory {
		s := &memStorage{}
		if _, _, err := e2e.CreateLinkedIn(s, p, 1); err != nil {
			t.Fatal(err)
		}
		if _, _, err := e2e.CreateLinkedIn(s, p, 1); !errors.Is(err, e2e.ErrExists) {
			t.Fatalf("second create: %v", err)
		}
	} else {
		dir := t.TempDir()
		if _, _, err := e2e.CreateLinked(dir, p, 1); err != nil {
			t.Fatal(err)
		}
		if _, _, err := e2e.CreateLinked(dir, p, 1); !errors.Is(err, e2e.ErrExists) {
			t.Fatalf("second create: %v", err)
		}
	}
	other := newParty(t, 0xb)
	for name, bad := range map[string]*e2e.Provisioning{
		"nil":            nil,
		"short account":  {IdentityPublic: p.IdentityPublic, IdentityPrivate: p.IdentityPrivate, AccountID: p.AccountID[:15]},
		"no private key": {IdentityPublic: p.IdentityPublic, AccountID: p.AccountID},
		"mismatched key": {IdentityPublic: other.dev.IdentityKey(), IdentityPrivate: p.IdentityPrivate, AccountID: p.AccountID},
	} {
		if _, _, err := e2e.CreateLinked(t.TempDir(), bad, 1); !errors.Is(err, e2e.ErrBadProvisioning) {
			t.Errorf("%s: %v", name, err)
		}
		if _, _, err := e2e.CreateLinkedIn(&memStorage{}, bad, 1); !errors.Is(err, e2e.ErrBadProvisioning) {
			t.Errorf("%s, in a storage: %v", name, err)
		}
	}
}

// TestLinkedDevicesBothDecrypt has a third party send to both devices of
// an account, as it would after fetching the account's keys.
func TestLinkedDevicesBothDecrypt(t *testing.T) {
	ctx := context.Background()
	primary := newParty(t, 0xa)
	linked := link(t, primary)
	carol := newParty(t, 0xc)
	keys := &client.Keys{AccountID: primary.acct, Devices: []client.DeviceBundle{
		{DeviceID: 1, RegistrationID: primary.reg.RegistrationID, IdentityKey: primary.reg.IdentityKey,
			SignedPreKey: primary.reg.SignedPreKey, PreKey: &primary.reg.PreKeys[0]},
		{DeviceID: 2, RegistrationID: linked.reg.RegistrationID, IdentityKey: linked.reg.IdentityKey,
			SignedPreKey: linked.reg.SignedPreKey, PreKey: &linked.reg.PreKeys[0]},
	}}
	// One identity per account: trust on first use accepts both devices.
	if err := carol.dev.StartSessions(ctx, keys, nil); err != nil {
		t.Fatal(err)
	}
	msgs, err := carol.dev.Encrypt(ctx, primary.acct, []uint32{1, 2}, []byte("hello both"))
	if err != nil || len(msgs) != 2 {
		t.Fatalf("encrypt: %d messages, %v", len(msgs), err)
	}
	for i, dev := range []*e2e.Device{primary.dev, linked.dev} {
		if msgs[i].DeviceID != uint32(i+1) {
			t.Fatalf("message %d is for device %d", i, msgs[i].DeviceID)
		}
		got, err := dev.Decrypt(ctx, envelope(carol, msgs[i]))
		if err != nil || string(got) != "hello both" {
			t.Fatalf("device %d decrypts %q, %v", i+1, got, err)
		}
	}
	// Each device's session is its own: the linked device cannot read
	// the primary's copy.
	if _, err := linked.dev.Decrypt(ctx, envelope(carol, msgs[0])); err == nil {
		t.Fatal("linked device decrypted the primary's message")
	}
	// Both answer on their sessions; carol reads both.
	for i, dev := range []*e2e.Device{primary.dev, linked.dev} {
		reply, err := dev.Encrypt(ctx, carol.acct, []uint32{1}, []byte("hi carol"))
		if err != nil {
			t.Fatal(err)
		}
		env := &client.Envelope{Sender: primary.acct, SenderDevice: uint32(i + 1), Type: reply[0].Type, Content: reply[0].Content}
		if got, err := carol.dev.Decrypt(ctx, env); err != nil || string(got) != "hi carol" {
			t.Fatalf("carol decrypts device %d: %q, %v", i+1, got, err)
		}
	}
}

func TestDeviceNames(t *testing.T) {
	primary := newParty(t, 0xa)
	linked := link(t, primary)
	stranger := newParty(t, 0xb)
	for _, c := range []struct {
		from, to *e2e.Device
		name     string
	}{
		{primary.dev, linked.dev, "Alice's phone"},
		{linked.dev, primary.dev, "Laptop ✓"},
		{linked.dev, linked.dev, ""},
		{primary.dev, linked.dev, strings.Repeat("n", e2e.MaxDeviceName)},
	} {
		sealed, err := c.from.SealDeviceName(c.name)
		if err != nil {
			t.Fatal(err)
		}
		if c.name != "" && bytes.Contains(sealed, []byte(c.name)) {
			t.Fatal("name in the clear")
		}
		if got, err := c.to.OpenDeviceName(sealed); err != nil || got != c.name {
			t.Fatalf("open %q: %q, %v", c.name, got, err)
		}
		if _, err := stranger.dev.OpenDeviceName(sealed); !errors.Is(err, e2e.ErrBadDeviceName) {
			t.Fatalf("stranger opens %q: %v", c.name, err)
		}
		for i := range sealed {
			b := bytes.Clone(sealed)
			b[i] ^= 0x40
			if _, err := c.to.OpenDeviceName(b); !errors.Is(err, e2e.ErrBadDeviceName) {
				t.Fatalf("byte %d altered: %v", i, err)
			}
		}
		for n := range len(sealed) {
			if _, err := c.to.OpenDeviceName(sealed[:n]); !errors.Is(err, e2e.ErrBadDeviceName) {
				t.Fatalf("truncated to %d: %v", n, err)
			}
		}
	}
	a, _ := primary.dev.SealDeviceName("same")
	b, _ := primary.dev.SealDeviceName("same")
	if bytes.Equal(a, b) {
		t.Fatal("sealing is deterministic")
	}
	if _, err := primary.dev.SealDeviceName(strings.Repeat("n", e2e.MaxDeviceName+1)); !errors.Is(err, e2e.ErrBadDeviceName) {
		t.Fatalf("65-byte name: %v", err)
	}
	if _, err := primary.dev.OpenDeviceName(make([]byte, 12+e2e.MaxDeviceName+16+1)); !errors.Is(err, e2e.ErrBadDeviceName) {
		t.Fatalf("oversized sealed name: %v", err)
	}
}
