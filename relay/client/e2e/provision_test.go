package e2e_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"go.mau.fi/libsignal/cipher"
	"go.mau.fi/libsignal/ecc"
	"go.mau.fi/libsignal/kdf"
	"go.mau.fi/libsignal/provision"

	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
)

// sealFor has primary seal a provisioning message, with a random link
// code, to a fresh provisioning key.
func sealFor(t testing.TB, primary *e2e.Device) (*e2e.ProvisioningKey, []byte, []byte) {
	t.Helper()
	k, err := e2e.NewProvisioningKey()
	if err != nil {
		t.Fatal(err)
	}
	if pub := k.Public(); len(pub) != 33 || pub[0] != 0x05 {
		t.Fatalf("public key %x", pub)
	}
	code := make([]byte, 16)
	rand.Read(code)
	sealed, err := primary.SealProvisioning(k.Public(), code)
	if err != nil {
		t.Fatal(err)
	}
	return k, code, sealed
}

func TestProvisioningRoundTrip(t *testing.T) {
	primary := newParty(t, 0xa)
	k, code, sealed := sealFor(t, primary.dev)
	if bytes.Contains(sealed, code) {
		t.Fatal("link code in the clear")
	}
	p, err := k.Open(sealed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.IdentityPublic, primary.dev.IdentityKey()) || len(p.IdentityPrivate) != 32 ||
		!bytes.Equal(p.AccountID, primary.acct) || !bytes.Equal(p.LinkCode, code) {
		t.Fatalf("opened %+v", p)
	}
}

func TestProvisioningWrongKey(t *testing.T) {
	primary := newParty(t, 0xa)
	_, _, sealed := sealFor(t, primary.dev)
	other, err := e2e.NewProvisioningKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Open(sealed); !errors.Is(err, e2e.ErrBadProvisioning) {
		t.Fatalf("open with another key: %v", err)
	}
	if _, err := new(e2e.ProvisioningKey).Open(sealed); !errors.Is(err, e2e.ErrBadProvisioning) {
		t.Fatalf("open with a zero key: %v", err)
	}
}

func TestProvisioningTamperingFails(t *testing.T) {
	primary := newParty(t, 0xa)
	k, _, sealed := sealFor(t, primary.dev)
	for n := range len(sealed) {
		if _, err := k.Open(sealed[:n]); !errors.Is(err, e2e.ErrBadProvisioning) {
			t.Fatalf("truncated to %d bytes: %v", n, err)
		}
	}
	for i := range len(sealed) * 8 {
		b := bytes.Clone(sealed)
		b[i/8] ^= 1 << (i % 8)
		if _, err := k.Open(b); !errors.Is(err, e2e.ErrBadProvisioning) {
			t.Fatalf("bit %d flipped: %v", i, err)
		}
	}
}

// TestProvisioningHostileEnvelopes feeds Open canonical envelopes with
// the shapes that make provision.Decrypt panic.
func TestProvisioningHostileEnvelopes(t *testing.T) {
	k, err := e2e.NewProvisioningKey()
	if err != nil {
		t.Fatal(err)
	}
	key := append([]byte{0x05}, bytes.Repeat([]byte{9}, 32)...)
	body := func(n int) []byte { b := make([]byte, n); b[0] = 1; return b }
	for _, c := range []struct {
		name, why string
		env       provision.ProvisionEnvelope
	}{
		{"empty", "sender key", provision.ProvisionEnvelope{}},
		{"no key", "sender key", provision.ProvisionEnvelope{Body: body(65)}},
		{"empty body", "body of 0", provision.ProvisionEnvelope{PublicKey: key}},
		{"short key", "sender key", provision.ProvisionEnvelope{PublicKey: key[:32], Body: body(65)}},
		{"key type", "sender key", provision.ProvisionEnvelope{PublicKey: append([]byte{0x06}, key[1:]...), Body: body(65)}},
		{"non-canonical key", "canonical Curve25519", provision.ProvisionEnvelope{PublicKey: append([]byte{0x05}, bytes.Repeat([]byte{0xff}, 32)...), Body: body(65)}},
		{"low-order key", "low-order", provision.ProvisionEnvelope{PublicKey: append([]byte{0x05}, make([]byte, 32)...), Body: body(65)}},
		{"short body", "body of 48", provision.ProvisionEnvelope{PublicKey: key, Body: body(48)}},
		{"no block", "body of 49", provision.ProvisionEnvelope{PublicKey: key, Body: body(49)}},
		{"partial block", "body of 66", provision.ProvisionEnvelope{PublicKey: key, Body: body(66)}},
		{"version", "version 0", provision.ProvisionEnvelope{PublicKey: key, Body: make([]byte, 65)}},
		{"bad mac", "MAC", provision.ProvisionEnvelope{PublicKey: key, Body: body(65)}},
		{"too long", "too long", provision.ProvisionEnvelope{PublicKey: key, Body: body(49 + 16*4096)}},
	} {
		b, err := json.Marshal(c.env)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := k.Open(b); !errors.Is(err, e2e.ErrBadProvisioning) || !strings.Contains(err.Error(), c.why) {
			t.Errorf("%s: %v, want %q", c.name, err, c.why)
		}
	}
	for _, b := range []string{"", "null", "[]", `{"public_key":1}`, `{"body":"!"}`, `{"body":null,"public_key":null}`, ` {"public_key":null,"body":null}`} {
		if _, err := k.Open([]byte(b)); !errors.Is(err, e2e.ErrBadProvisioning) {
			t.Errorf("%q: %v", b, err)
		}
	}
}

// sealRaw seals any plaintext to pub the way SealProvisioning does, as
// anyone who knows pub can.
func sealRaw(t *testing.T, pub, plain []byte) []byte {
	t.Helper()
	eph, err := ecc.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := ecc.DecodePoint(pub, 0)
	if err != nil {
		t.Fatal(err)
	}
	shared := kdf.CalculateSharedSecret(theirs.PublicKey(), eph.PrivateKey().Serialize())
	keys, err := kdf.DeriveSecrets(shared[:], nil, []byte("Mixin Provisioning Message"), 64)
	if err != nil {
		t.Fatal(err)
	}
	iv := make([]byte, 16)
	rand.Read(iv)
	ct, err := cipher.EncryptCbc(iv, keys[:32], plain)
	if err != nil {
		t.Fatal(err)
	}
	body := append(append([]byte{1}, iv...), ct...)
	mac := hmac.New(sha256.New, keys[32:])
	mac.Write(body)
	b, err := json.Marshal(provision.ProvisionEnvelope{PublicKey: eph.PublicKey().Serialize(), Body: mac.Sum(body)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestProvisioningMessageValidation seals authentic messages with bad
// contents: the MAC only proves the sender knew the public key.
func TestProvisioningMessageValidation(t *testing.T) {
	k, err := e2e.NewProvisioningKey()
	if err != nil {
		t.Fatal(err)
	}
	ik, err := ecc.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	other, err := ecc.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	priv := ik.PrivateKey().Serialize()
	otherPriv := other.PrivateKey().Serialize()
	unclamped := priv
	unclamped[0] |= 1
	good := provision.ProvisionMessage{
		IdentityKeyPublic:  ik.PublicKey().Serialize(),
		IdentityKeyPrivate: priv[:],
		UserId:             strings.Repeat("ab", 16),
		ProvisioningCode:   base64.StdEncoding.EncodeToString(make([]byte, 16)),
	}
	open := func(plain []byte) error {
		_, err := k.Open(sealRaw(t, k.Public(), plain))
		return err
	}
	b, _ := json.Marshal(good)
	if err := open(b); err != nil {
		t.Fatalf("valid message: %v", err)
	}
	for name, edit := range map[string]func(m *provision.ProvisionMessage){
		"no public key":     func(m *provision.ProvisionMessage) { m.IdentityKeyPublic = nil },
		"short public key":  func(m *provision.ProvisionMessage) { m.IdentityKeyPublic = m.IdentityKeyPublic[:32] },
		"no private key":    func(m *provision.ProvisionMessage) { m.IdentityKeyPrivate = nil },
		"other private key": func(m *provision.ProvisionMessage) { m.IdentityKeyPrivate = otherPriv[:] },
		"unclamped key":     func(m *provision.ProvisionMessage) { m.IdentityKeyPrivate = unclamped[:] },
		"short user id":     func(m *provision.ProvisionMessage) { m.UserId = m.UserId[:30] },
		"user id not hex":   func(m *provision.ProvisionMessage) { m.UserId = strings.Repeat("zz", 16) },
		"short code": func(m *provision.ProvisionMessage) {
			m.ProvisioningCode = base64.StdEncoding.EncodeToString(make([]byte, 15))
		},
		"code not base64": func(m *provision.ProvisionMessage) { m.ProvisioningCode = "!" },
	} {
		m := good
		edit(&m)
		b, _ := json.Marshal(m)
		if err := open(b); !errors.Is(err, e2e.ErrBadProvisioning) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, plain := range []string{"", "not json", "[]", "null"} {
		if err := open([]byte(plain)); !errors.Is(err, e2e.ErrBadProvisioning) {
			t.Errorf("plaintext %q: %v", plain, err)
		}
	}
}

func TestSealProvisioningChecksArguments(t *testing.T) {
	primary := newParty(t, 0xa)
	k, err := e2e.NewProvisioningKey()
	if err != nil {
		t.Fatal(err)
	}
	code := make([]byte, 16)
	if _, err := primary.dev.SealProvisioning(k.Public(), code[:15]); err == nil {
		t.Error("15-byte link code accepted")
	}
	for _, pub := range [][]byte{nil, k.Public()[:32], append([]byte{0x05}, make([]byte, 32)...)} {
		if _, err := primary.dev.SealProvisioning(pub, code); err == nil {
			t.Errorf("public key %x accepted", pub)
		}
	}
	fresh, _ := createDevice(t, 0)
	if _, err := fresh.SealProvisioning(k.Public(), code); !errors.Is(err, e2e.ErrNotRegistered) {
		t.Errorf("unregistered device: %v", err)
	}
}

// FuzzOpen checks that Open never panics, and that whatever it accepts
// is a valid provisioning.
func FuzzOpen(f *testing.F) {
	dir := f.TempDir()
	primary, _, err := e2e.Create(dir, 0)
	if err != nil {
		f.Fatal(err)
	}
	if err := primary.Registered(bytes.Repeat([]byte{0xa}, 16), 1); err != nil {
		f.Fatal(err)
	}
	k, _, sealed := sealFor(f, primary)
	f.Add(sealed)
	f.Add([]byte(`{"public_key":"BQ==","body":"AQ=="}`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := k.Open(b)
		if err != nil {
			if !errors.Is(err, e2e.ErrBadProvisioning) {
				t.Fatalf("error does not wrap ErrBadProvisioning: %v", err)
			}
			return
		}
		if len(p.IdentityPublic) != 33 || len(p.IdentityPrivate) != 32 || len(p.AccountID) != 16 || len(p.LinkCode) != 16 {
			t.Fatalf("accepted %+v", p)
		}
	})
}

// FuzzOpenEnvelope fuzzes the envelope's fields inside a canonical
// encoding, to reach the checks behind the canonical-form one.
func FuzzOpenEnvelope(f *testing.F) {
	primary, _, err := e2e.Create(f.TempDir(), 0)
	if err != nil {
		f.Fatal(err)
	}
	if err := primary.Registered(bytes.Repeat([]byte{0xa}, 16), 1); err != nil {
		f.Fatal(err)
	}
	k, _, sealed := sealFor(f, primary)
	var env provision.ProvisionEnvelope
	if err := json.Unmarshal(sealed, &env); err != nil {
		f.Fatal(err)
	}
	f.Add(env.PublicKey, env.Body)
	f.Add(env.PublicKey, env.Body[:65])
	f.Add([]byte{5}, []byte{1})
	f.Fuzz(func(t *testing.T, pub, body []byte) {
		b, err := json.Marshal(provision.ProvisionEnvelope{PublicKey: pub, Body: body})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := k.Open(b); err != nil && !errors.Is(err, e2e.ErrBadProvisioning) {
			t.Fatalf("error does not wrap ErrBadProvisioning: %v", err)
		}
	})
}
