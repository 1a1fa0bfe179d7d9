package relay_test

import (
	"bytes"
	"crypto/mlkem"
	"testing"

	"go.mau.fi/libsignal/ecc"
	"go.mau.fi/libsignal/keys/identity"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/relaytest"
	"github.com/pigeonhole/pigeonhole/spec"
)

// kemKey makes a KEM prekey signed by ik the way an app does, with the
// client's helper, and returns its private seed too.
func kemKey(t testing.TB, ik *identity.KeyPair, id uint32) (client.KemPreKey, []byte) {
	t.Helper()
	k, seed, err := client.NewKemPreKey(id, func(msg []byte) ([]byte, error) {
		sig := ecc.CalculateSignature(ik.PrivateKey(), msg)
		return sig[:], nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return k, seed
}

func kemKeys(t testing.TB, ik *identity.KeyPair, start uint32, n int) []client.KemPreKey {
	out := make([]client.KemPreKey, n)
	for i := range out {
		out[i], _ = kemKey(t, ik, start+uint32(i))
	}
	return out
}

// registerKem creates an account with n one-time X25519 prekeys and a
// last-resort KEM prekey (id 1000).
func (r *testRelay) registerKem(t testing.TB, n int) (*device, client.KemPreKey) {
	t.Helper()
	reg, ik := newRegistration(t, n)
	lr, _ := kemKey(t, ik, 1000)
	reg.KemLastResort = &lr
	c := r.dial(t)
	acct, err := c.Register(ctxT(t), reg)
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	c.Close()
	return &device{Account: *acct, auth: reg.AuthKey, identity: ik}, lr
}

// verifyKem checks a bundle's KEM prekey as a sender must: the identity
// key's signature over the encoded key, and the key itself.
func verifyKem(t testing.TB, b client.DeviceBundle) *mlkem.EncapsulationKey1024 {
	t.Helper()
	ik, err := ecc.DecodePoint(b.IdentityKey, 0)
	if err != nil {
		t.Fatal(err)
	}
	k := b.KemPreKey
	if len(k.Signature) != 64 || !ecc.VerifySignature(ik, k.PublicKey, [64]byte(k.Signature)) {
		t.Fatalf("KEM prekey %d: the signature does not verify", k.ID)
	}
	ek, err := client.ParseKemPublicKey(k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return ek
}

// TestKemPreKeysOverQUIC: a device registers with a last-resort KEM
// prekey and uploads one-time ones; senders claim the one-time ones once
// each, lowest id first, with signatures that verify and keys the device
// can decapsulate for; the device hears when they run low; then every
// bundle carries the last-resort one, flagged; prekey_status counts both.
func TestKemPreKeysOverQUIC(t *testing.T) {
	r := startRelay(t, testConfig())
	bob, lastResort := r.registerKem(t, 20)
	bc := r.session(t, bob, 4)
	// No one-time KEM prekeys yet: told at once, with both counts.
	if ev := nextKind(t, bc, client.EventPreKeysLow); ev.PreKeysRemaining != 20 || ev.KemPreKeysRemaining != 0 {
		t.Fatalf("first notice: %d, %d; want 20, 0", ev.PreKeysRemaining, ev.KemPreKeysRemaining)
	}
	nextKind(t, bc, client.EventDrained)
	first, seed := kemKey(t, bob.identity, 1)
	if n, err := bc.UploadKemPreKeys(ctxT(t), append([]client.KemPreKey{first}, kemKeys(t, bob.identity, 2, 10)...)); err != nil || n != 11 {
		t.Fatalf("upload: %d, %v", n, err)
	}
	if st, err := bc.PreKeyCounts(ctxT(t)); err != nil || *st != (client.PreKeyCounts{PreKeys: 20, KemPreKeys: 11, KemLastResort: true}) {
		t.Fatalf("status: %+v, %v", st, err)
	}

	alice := r.register(t, 0)
	ac := r.session(t, alice, 0)
	for want := uint32(1); want <= 11; want++ {
		ks, err := ac.FetchKeys(ctxT(t), bob.AccountID)
		if err != nil {
			t.Fatal(err)
		}
		b := ks.Devices[0]
		if b.KemPreKey == nil || b.KemPreKey.ID != want || b.KemLastResort {
			t.Fatalf("fetch %d: KEM prekey %+v, last resort %v", want, b.KemPreKey, b.KemLastResort)
		}
		ek := verifyKem(t, b)
		if want == 1 {
			// The seed NewKemPreKey returned is the key's private half.
			secret, ct := ek.Encapsulate()
			dk, err := mlkem.NewDecapsulationKey1024(seed)
			if err != nil {
				t.Fatal(err)
			}
			got, err := dk.Decapsulate(ct)
			if err != nil || !bytes.Equal(got, secret) {
				t.Fatalf("decapsulate with the seed: %v", err)
			}
		}
		if want == 2 {
			// 11 -> 10 is not below the threshold of 10; 10 -> 9 is.
			ev := nextKind(t, bc, client.EventPreKeysLow)
			if ev.KemPreKeysRemaining != 9 || ev.PreKeysRemaining != 18 {
				t.Fatalf("low notice: %d KEM, %d X25519; want 9, 18", ev.KemPreKeysRemaining, ev.PreKeysRemaining)
			}
		}
	}
	for range 2 {
		ks, err := ac.FetchKeys(ctxT(t), bob.AccountID)
		if err != nil {
			t.Fatal(err)
		}
		b := ks.Devices[0]
		if b.KemPreKey == nil || !b.KemLastResort || b.KemPreKey.ID != 1000 || !bytes.Equal(b.KemPreKey.PublicKey, lastResort.PublicKey) {
			t.Fatalf("exhausted: %+v, last resort %v", b.KemPreKey, b.KemLastResort)
		}
		verifyKem(t, b)
		if b.PreKey == nil {
			t.Fatal("the X25519 prekeys ran out with the KEM ones")
		}
	}
	if st, err := bc.PreKeyCounts(ctxT(t)); err != nil || *st != (client.PreKeyCounts{PreKeys: 7, KemPreKeys: 0, KemLastResort: true}) {
		t.Fatalf("status after the claims: %+v, %v", st, err)
	}

	// Rotation replaces the last-resort one.
	next, _ := kemKey(t, bob.identity, 1001)
	if err := bc.RotateLastResortKemPreKey(ctxT(t), next); err != nil {
		t.Fatal(err)
	}
	ks, err := ac.FetchKeys(ctxT(t), bob.AccountID)
	if err != nil {
		t.Fatal(err)
	}
	if b := ks.Devices[0]; b.KemPreKey == nil || b.KemPreKey.ID != 1001 || !b.KemLastResort || !bytes.Equal(b.KemPreKey.PublicKey, next.PublicKey) {
		t.Fatalf("after rotation: %+v", b.KemPreKey)
	}
}

// TestBadKemPreKeysRefused: a bad signature, a wrong type byte, a wrong
// length and too many keys are refused with their codes and a sentence,
// in uploads, rotations and registrations, and nothing is stored.
func TestBadKemPreKeysRefused(t *testing.T) {
	r := startRelay(t, testConfig())
	bob, lastResort := r.registerKem(t, 0)
	bc := r.session(t, bob, 0)
	_, otherIK, err := relaytest.NewRegistration(0)
	if err != nil {
		t.Fatal(err)
	}
	good, _ := kemKey(t, bob.identity, 1)
	foreign, _ := kemKey(t, otherIK, 2)
	flipped := good
	flipped.Signature = bytes.Clone(good.Signature)
	flipped.Signature[0] ^= 1
	kyber := good
	kyber.PublicKey = append([]byte{0x08}, good.PublicKey[1:]...)
	short := good
	short.PublicKey = good.PublicKey[:client.KemPublicKeySize-1]
	long := good
	long.PublicKey = append(bytes.Clone(good.PublicKey), 0)
	empty := good
	empty.PublicKey = nil
	for _, tc := range []struct {
		name string
		k    client.KemPreKey
		code spec.Code
	}{
		{"signed by another identity", foreign, spec.CodeBadPreKeySignature},
		{"flipped signature bit", flipped, spec.CodeBadPreKeySignature},
		{"Kyber1024 type byte", kyber, spec.CodeInvalidKey},
		{"one byte short", short, spec.CodeInvalidKey},
		{"one byte long", long, spec.CodeInvalidKey},
		{"empty", empty, spec.CodeInvalidKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := bc.UploadKemPreKeys(ctxT(t), []client.KemPreKey{good, tc.k})
			if e := wantCode(t, err, tc.code); !bytes.Contains([]byte(e.Message), []byte("KEM prekey")) {
				t.Errorf("upload: %q does not say which key", e.Message)
			}
			wantCode(t, bc.RotateLastResortKemPreKey(ctxT(t), tc.k), tc.code)
			reg, _ := newRegistration(t, 0)
			k := tc.k
			if tc.code == spec.CodeBadPreKeySignature {
				k = foreign // not signed by the new registration's identity
			}
			reg.KemLastResort = &k
			_, err = r.dial(t).Register(ctxT(t), reg)
			wantCode(t, err, tc.code)
		})
	}
	_, err = bc.UploadKemPreKeys(ctxT(t), kemKeys(t, bob.identity, 1, 101))
	if e := wantCode(t, err, spec.CodeTooManyPreKeys); !bytes.Contains([]byte(e.Message), []byte("KEM")) {
		t.Errorf("too many: %q does not say KEM", e.Message)
	}
	wantCode(t, bc.RotateLastResortKemPreKey(ctxT(t), client.KemPreKey{}), spec.CodeInvalidKey)
	if st, err := bc.PreKeyCounts(ctxT(t)); err != nil || st.KemPreKeys != 0 || !st.KemLastResort {
		t.Fatalf("after the refusals: %+v, %v", st, err)
	}
	ac := r.session(t, r.register(t, 0), 0)
	ks, err := ac.FetchKeys(ctxT(t), bob.AccountID)
	if err != nil {
		t.Fatal(err)
	}
	if b := ks.Devices[0]; b.KemPreKey == nil || !bytes.Equal(b.KemPreKey.PublicKey, lastResort.PublicKey) {
		t.Fatalf("the refused rotations changed the last-resort key: %+v", b.KemPreKey)
	}
}

// TestKemPreKeysOptional: a device registered without KEM prekeys gets
// bundles without one and is not told about KEM prekeys on connecting;
// a device linked with a last-resort KEM prekey serves it.
func TestKemPreKeysOptional(t *testing.T) {
	r := startRelay(t, testConfig())
	plain := r.register(t, 20)
	pc := r.session(t, plain, 4)
	// The first event is the drain, not a prekey notice: 20 X25519
	// prekeys are enough, and the device has no KEM keys to count.
	if ev, err := pc.Next(ctxT(t)); err != nil || ev.Kind != client.EventDrained {
		t.Fatalf("first event: %+v, %v; want the drain", ev, err)
	}
	ac := r.session(t, r.register(t, 0), 0)
	ks, err := ac.FetchKeys(ctxT(t), plain.AccountID)
	if err != nil {
		t.Fatal(err)
	}
	if b := ks.Devices[0]; b.KemPreKey != nil || b.KemLastResort {
		t.Fatalf("device without KEM keys: %+v", b.KemPreKey)
	}

	// Linking with a last-resort KEM prekey.
	nc := r.dial(t)
	prov, err := nc.OpenProvisioning(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	code, _, err := pc.CreateLinkCode(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.Provision(ctxT(t), prov.Address, code); err != nil {
		t.Fatal(err)
	}
	if _, err := prov.Wait(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	reg, err := relaytest.NewLinkedRegistration(plain.identity, 0)
	if err != nil {
		t.Fatal(err)
	}
	lr, _ := kemKey(t, plain.identity, 5)
	reg.KemLastResort = &lr
	linked, err := nc.LinkDevice(ctxT(t), plain.AccountID, code, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ks, err = ac.FetchKeys(ctxT(t), plain.AccountID)
	if err != nil || len(ks.Devices) != 2 {
		t.Fatalf("fetch: %+v, %v", ks, err)
	}
	if b := ks.Devices[1]; b.DeviceID != linked.DeviceID || b.KemPreKey == nil || b.KemPreKey.ID != 5 || !b.KemLastResort {
		t.Fatalf("linked device's bundle: %+v", b)
	} else {
		verifyKem(t, b)
	}
}
