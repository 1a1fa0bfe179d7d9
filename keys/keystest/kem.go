package keystest

import (
	"bytes"
	"cmp"
	"context"
	"crypto/mlkem"
	"errors"
	"sync"
	"testing"
	"time"

	"go.mau.fi/libsignal/ecc"
	"go.mau.fi/libsignal/keys/identity"

	"github.com/pigeonhole/pigeonhole/keys"
)

// KemPreKey returns a real ML-KEM-1024 prekey with id, signed by ik.
func KemPreKey(t testing.TB, ik *identity.KeyPair, id uint32) keys.KemPreKey {
	t.Helper()
	dk, err := mlkem.GenerateKey1024()
	if err != nil {
		t.Fatal(err)
	}
	pub := append([]byte{keys.KemKeyType}, dk.EncapsulationKey().Bytes()...)
	sig := ecc.CalculateSignature(ik.PrivateKey(), pub)
	return keys.KemPreKey{ID: id, PublicKey: pub, Signature: sig[:]}
}

// KemPreKeys returns n real KEM prekeys with ids start..start+n-1.
func KemPreKeys(t testing.TB, ik *identity.KeyPair, start uint32, n int) []keys.KemPreKey {
	t.Helper()
	out := make([]keys.KemPreKey, n)
	for i := range out {
		out[i] = KemPreKey(t, ik, start+uint32(i))
	}
	return out
}

// newKemDevice is newDevice with a last-resort KEM prekey (id 1000).
func newKemDevice(t testing.TB) (keys.Device, *identity.KeyPair) {
	t.Helper()
	d, ik := newDevice(t)
	lr := KemPreKey(t, ik, 1000)
	d.KemLastResort = &lr
	return d, ik
}

// testKemClaimsThenLastResort: one-time KEM prekeys are handed out once,
// lowest id first, apart from the X25519 ones; then the last-resort one,
// every time, flagged and never used up. A device that never set one
// gets none, and a linked device keeps its own.
func testKemClaimsThenLastResort(t *testing.T, open Open) {
	s := open(t, keys.Config{})
	dev, ik := newKemDevice(t)
	acct, err := s.CreateAccount(ctx(), dev, preKeys(t, 1, 1))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s.AddKemPreKeys(ctx(), acct, 1, KemPreKeys(t, ik, 1, 2)); err != nil || n != 2 {
		t.Fatalf("AddKemPreKeys = %d, %v", n, err)
	}
	if n, lr, err := s.KemPreKeyCount(ctx(), acct, 1); err != nil || n != 2 || !lr {
		t.Fatalf("KemPreKeyCount = %d, %v, %v; want 2, true", n, lr, err)
	}
	for i, want := range []struct {
		id        uint32
		remaining int
	}{{1, 1}, {2, 0}} {
		bs, err := s.FetchBundles(ctx(), acct, nil)
		if err != nil {
			t.Fatal(err)
		}
		k := bs[0].KemPreKey
		if k == nil || k.ID != want.id || bs[0].KemLastResort || bs[0].KemRemaining != want.remaining {
			t.Fatalf("fetch %d: KEM prekey %+v, last resort %v, remaining %d", i, k, bs[0].KemLastResort, bs[0].KemRemaining)
		}
		if len(k.PublicKey) != keys.KemPublicKeySize || len(k.Signature) != 64 {
			t.Fatalf("fetch %d: KEM prekey of %d and %d bytes", i, len(k.PublicKey), len(k.Signature))
		}
		if (i == 0) != (bs[0].PreKey != nil) {
			t.Fatalf("fetch %d: X25519 prekey %+v (the device had one)", i, bs[0].PreKey)
		}
	}
	for i := range 3 {
		bs, err := s.FetchBundles(ctx(), acct, nil)
		if err != nil {
			t.Fatal(err)
		}
		k := bs[0].KemPreKey
		if k == nil || !bs[0].KemLastResort || k.ID != 1000 || !bytes.Equal(k.PublicKey, dev.KemLastResort.PublicKey) ||
			!bytes.Equal(k.Signature, dev.KemLastResort.Signature) || bs[0].KemRemaining != 0 {
			t.Fatalf("exhausted fetch %d: %+v, last resort %v", i, k, bs[0].KemLastResort)
		}
		if bs[0].PreKey != nil || bs[0].SignedPreKey.ID != 1 {
			t.Fatalf("exhausted fetch %d: X25519 %+v, signed %d", i, bs[0].PreKey, bs[0].SignedPreKey.ID)
		}
	}
	if n, lr, err := s.KemPreKeyCount(ctx(), acct, 1); err != nil || n != 0 || !lr {
		t.Fatalf("after the claims: %d, %v, %v; want 0, true", n, lr, err)
	}

	// Without a last-resort one: one-time ones, then nothing.
	plain, pik := newDevice(t)
	pacct, err := s.CreateAccount(ctx(), plain, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddKemPreKeys(ctx(), pacct, 1, KemPreKeys(t, pik, 5, 1)); err != nil {
		t.Fatal(err)
	}
	for i, want := range []uint32{5, 0} {
		bs, err := s.FetchBundles(ctx(), pacct, nil)
		if err != nil {
			t.Fatal(err)
		}
		switch k := bs[0].KemPreKey; {
		case want == 0 && k != nil, want != 0 && (k == nil || k.ID != want), bs[0].KemLastResort:
			t.Fatalf("device without a last resort, fetch %d: %+v, %v", i, k, bs[0].KemLastResort)
		}
	}
	if _, lr, err := s.KemPreKeyCount(ctx(), pacct, 1); err != nil || lr {
		t.Fatalf("device without a last resort: %v, %v", lr, err)
	}

	// A linked device brings its own last-resort KEM prekey.
	code, _, err := s.CreateLinkCode(ctx(), acct, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	linked := linkedDevice(t, ik, "pq")
	lr := KemPreKey(t, ik, 77)
	linked.KemLastResort = &lr
	id, err := s.LinkDevice(ctx(), acct, code, linked, nil)
	if err != nil {
		t.Fatal(err)
	}
	bs, err := s.FetchBundles(ctx(), acct, nil)
	if err != nil || len(bs) != 2 {
		t.Fatalf("bundles %d, %v", len(bs), err)
	}
	if b := bs[1]; b.DeviceID != id || b.KemPreKey == nil || b.KemPreKey.ID != 77 || !b.KemLastResort {
		t.Fatalf("linked device's bundle: %+v", b)
	}
	// The directory gives the device back with its last-resort one.
	d, err := s.Device(ctx(), acct, id)
	if err != nil || d.KemLastResort == nil || d.KemLastResort.ID != 77 {
		t.Fatalf("Device: %+v, %v", d.KemLastResort, err)
	}
}

// badKemKeys are KEM prekeys the directory must refuse, by what is wrong.
func badKemKeys(t testing.TB, ik, other *identity.KeyPair) map[string]keys.KemPreKey {
	good := KemPreKey(t, ik, 9)
	with := func(f func(k *keys.KemPreKey)) keys.KemPreKey {
		k := keys.KemPreKey{ID: good.ID, PublicKey: bytes.Clone(good.PublicKey), Signature: bytes.Clone(good.Signature)}
		f(&k)
		return k
	}
	// A key whose first coefficient is 0xfff (above q = 3329), re-signed:
	// the right size and a good signature, but no ML-KEM-1024 key.
	resign := func(k *keys.KemPreKey) {
		sig := ecc.CalculateSignature(ik.PrivateKey(), k.PublicKey)
		k.Signature = sig[:]
	}
	outOfRange := with(func(k *keys.KemPreKey) { k.PublicKey[1], k.PublicKey[2] = 0xff, 0x0f; resign(k) })
	kyberType := with(func(k *keys.KemPreKey) { k.PublicKey[0] = 0x08; resign(k) })
	return map[string]keys.KemPreKey{
		"signed by another identity": KemPreKey(t, other, 9),
		"flipped signature bit":      with(func(k *keys.KemPreKey) { k.Signature[3] ^= 1 }),
		"flipped key bit":            with(func(k *keys.KemPreKey) { k.PublicKey[700] ^= 1 }),
		"short signature":            with(func(k *keys.KemPreKey) { k.Signature = k.Signature[:63] }),
		"no signature":               with(func(k *keys.KemPreKey) { k.Signature = nil }),
		"empty key":                  with(func(k *keys.KemPreKey) { k.PublicKey = nil }),
		"one-byte key":               with(func(k *keys.KemPreKey) { k.PublicKey = k.PublicKey[:1] }),
		"short key":                  with(func(k *keys.KemPreKey) { k.PublicKey = k.PublicKey[:keys.KemPublicKeySize-1] }),
		"long key":                   with(func(k *keys.KemPreKey) { k.PublicKey = append(k.PublicKey, 0) }),
		"no type byte":               with(func(k *keys.KemPreKey) { k.PublicKey = k.PublicKey[1:] }),
		"Kyber1024 type byte":        kyberType,
		"coefficient out of range":   outOfRange,
	}
}

// testKemPreKeysMustVerify: wrong type byte, wrong length, a key that is
// not ML-KEM-1024 and a bad signature are refused, in one-time and in
// last-resort KEM prekeys; a refused batch stores nothing, a refused
// rotation keeps the old key.
func testKemPreKeysMustVerify(t *testing.T, open Open) {
	s := open(t, keys.Config{})
	dev, ik := newKemDevice(t)
	acct, err := s.CreateAccount(ctx(), dev, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, other := newDevice(t)
	for name, bad := range badKemKeys(t, ik, other) {
		wantErr := func(what string, err error) {
			t.Helper()
			if !errors.Is(err, keys.ErrInvalidKey) && !errors.Is(err, keys.ErrBadSignature) {
				t.Errorf("%s, %s: %v", name, what, err)
			}
		}
		batch := append(KemPreKeys(t, ik, 1, 2), bad)
		_, err := s.AddKemPreKeys(ctx(), acct, 1, batch)
		wantErr("upload", err)
		wantErr("rotation", s.RotateKemLastResort(ctx(), acct, 1, bad))
		d, _ := newDevice(t)
		d.IdentityKey, d.SignedPreKey = dev.IdentityKey, dev.SignedPreKey
		d.KemLastResort = &bad
		_, err = s.CreateAccount(ctx(), d, nil)
		wantErr("registration", err)
	}
	if n, _, err := s.KemPreKeyCount(ctx(), acct, 1); err != nil || n != 0 {
		t.Fatalf("after refused batches the device holds %d KEM prekeys (%v)", n, err)
	}
	bs, err := s.FetchBundles(ctx(), acct, nil)
	if err != nil || bs[0].KemPreKey == nil || !bytes.Equal(bs[0].KemPreKey.PublicKey, dev.KemLastResort.PublicKey) {
		t.Fatalf("after refused rotations: %+v, %v", bs, err)
	}
	// A signature by another identity is told apart from a bad encoding.
	if _, err := s.AddKemPreKeys(ctx(), acct, 1, []keys.KemPreKey{KemPreKey(t, other, 1)}); !errors.Is(err, keys.ErrBadKemSignature) {
		t.Errorf("foreign signature: %v, want ErrBadKemSignature", err)
	}
	if _, err := s.AddKemPreKeys(ctx(), acct, 1, []keys.KemPreKey{{ID: 1, PublicKey: []byte{keys.KemKeyType}}}); !errors.Is(err, keys.ErrInvalidKey) {
		t.Errorf("one-byte key: %v, want ErrInvalidKey", err)
	}
}

func testKemPreKeyLimits(t *testing.T, open Open) {
	s := open(t, keys.Config{MaxPreKeys: 150})
	dev, ik := newDevice(t)
	acct, err := s.CreateAccount(ctx(), dev, nil)
	if err != nil {
		t.Fatal(err)
	}
	pool := KemPreKeys(t, ik, 1, 151)
	if _, err := s.AddKemPreKeys(ctx(), acct, 1, pool[:101]); !errors.Is(err, keys.ErrTooManyPreKeys) {
		t.Fatalf("batch of 101: %v", err)
	}
	if n, err := s.AddKemPreKeys(ctx(), acct, 1, pool[:100]); err != nil || n != 100 {
		t.Fatalf("add 1..100: %d %v", n, err)
	}
	// Replacing stored ids does not count twice.
	if n, err := s.AddKemPreKeys(ctx(), acct, 1, pool[50:150]); err != nil || n != 150 {
		t.Fatalf("add 51..150: %d %v", n, err)
	}
	if _, err := s.AddKemPreKeys(ctx(), acct, 1, pool[150:]); !errors.Is(err, keys.ErrTooManyPreKeys) {
		t.Fatalf("over the cap: %v", err)
	}
	// The X25519 cap is counted apart.
	if _, err := s.AddPreKeys(ctx(), acct, 1, preKeys(t, 1, 100)); err != nil {
		t.Fatalf("X25519 prekeys beside 150 KEM ones: %v", err)
	}
	if n, _, err := s.KemPreKeyCount(ctx(), acct, 1); err != nil || n != 150 {
		t.Fatalf("count %d %v", n, err)
	}
	if _, err := s.AddKemPreKeys(ctx(), acct, 9, pool[:1]); !errors.Is(err, keys.ErrUnknownDevice) {
		t.Fatalf("unknown device: %v", err)
	}
	if _, _, err := s.KemPreKeyCount(ctx(), acct, 9); !errors.Is(err, keys.ErrUnknownDevice) {
		t.Fatalf("count of an unknown device: %v", err)
	}
	// A removed device's KEM prekeys go with it.
	d2, ik2 := newDevice(t)
	id2, err := s.AddDevice(ctx(), acct, d2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddKemPreKeys(ctx(), acct, id2, KemPreKeys(t, ik2, 1, 3)); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveDevice(ctx(), acct, id2); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.KemPreKeyCount(ctx(), acct, id2); !errors.Is(err, keys.ErrUnknownDevice) {
		t.Fatalf("removed device: %v", err)
	}
}

// testConcurrentKemClaimsNeverRepeat is testConcurrentClaimsNeverRepeat
// for one-time KEM prekeys, on a device with a last-resort one: every
// one-time KEM prekey is handed out exactly once, and every other bundle
// carries the last-resort one. Slow is told from wrong the same way.
func testConcurrentKemClaimsNeverRepeat(t *testing.T, open Open) {
	s := open(t, keys.Config{})
	dev, ik := newKemDevice(t)
	acct, err := s.CreateAccount(ctx(), dev, nil)
	if err != nil {
		t.Fatal(err)
	}
	const fetchers, each, stored = 50, 5, 200 // 250 claims for 200 keys
	for start := uint32(1); start <= stored; start += 100 {
		if _, err := s.AddKemPreKeys(ctx(), acct, 1, KemPreKeys(t, ik, start, 100)); err != nil {
			t.Fatal(err)
		}
	}
	fctx, cancel := context.WithTimeout(ctx(), 2*time.Minute)
	defer cancel()
	var (
		mu         sync.Mutex
		seen       = map[uint32]int{}
		lastResort int
		without    int   // bundles with no KEM prekey at all: wrong
		slow       int   // fetches that ran out of time
		failed     error // the first fetch that failed otherwise
		wg         sync.WaitGroup
	)
	for range fetchers {
		wg.Go(func() {
			for range each {
				bs, err := s.FetchBundles(fctx, acct, nil)
				mu.Lock()
				switch {
				case errors.Is(err, context.DeadlineExceeded):
					slow++
				case err != nil:
					failed = cmp.Or(failed, err)
				case bs[0].KemPreKey == nil:
					without++
				case bs[0].KemLastResort:
					lastResort++
				default:
					seen[bs[0].KemPreKey.ID]++
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	for id, n := range seen {
		if n != 1 {
			t.Errorf("wrong: KEM prekey %d handed out %d times", id, n)
		}
	}
	if failed != nil {
		t.Fatalf("a fetch failed: %v", failed)
	}
	if without != 0 {
		t.Fatalf("wrong: %d bundles without a KEM prekey from a device with a last-resort one", without)
	}
	left, lr, err := s.KemPreKeyCount(ctx(), acct, 1)
	if err != nil || !lr {
		t.Fatalf("count: %v, last resort %v", err, lr)
	}
	if n := len(seen) + left; n > stored || n < stored-slow {
		t.Fatalf("wrong: %d KEM prekeys handed out and %d left of %d stored (%d fetches timed out)", len(seen), left, stored, slow)
	}
	if slow > 0 {
		t.Fatalf("slow, not wrong: %d of %d fetches ran out of their 2-minute deadline; no KEM prekey was handed out twice", slow, fetchers*each)
	}
	if len(seen) != stored || lastResort != fetchers*each-stored {
		t.Fatalf("wrong: %d distinct KEM prekeys handed out, %d last-resort bundles", len(seen), lastResort)
	}
}

// testRefusedClaimKeepsKemPreKeys: a device that mayClaim refuses gets
// its last-resort KEM prekey and keeps its one-time ones; mayClaim is
// asked about a device that holds only one-time KEM prekeys, once.
func testRefusedClaimKeepsKemPreKeys(t *testing.T, open Open) {
	s := open(t, keys.Config{})
	d1, ik := newKemDevice(t)
	acct, err := s.CreateAccount(ctx(), d1, nil) // no X25519 one-time prekeys
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddKemPreKeys(ctx(), acct, 1, KemPreKeys(t, ik, 1, 3)); err != nil {
		t.Fatal(err)
	}
	asked := 0
	bs, err := s.FetchBundles(ctx(), acct, func(uint32) bool { asked++; return false })
	if err != nil {
		t.Fatal(err)
	}
	if asked != 1 || bs[0].KemPreKey == nil || !bs[0].KemLastResort || bs[0].KemRemaining != 3 || bs[0].PreKey != nil {
		t.Fatalf("refused: asked %d, bundle %+v", asked, bs[0])
	}
	if n, _, err := s.KemPreKeyCount(ctx(), acct, 1); err != nil || n != 3 {
		t.Fatalf("refused device holds %d KEM prekeys (%v), want 3", n, err)
	}
	asked = 0
	bs, err = s.FetchBundles(ctx(), acct, func(uint32) bool { asked++; return true })
	if err != nil {
		t.Fatal(err)
	}
	if asked != 1 || bs[0].KemPreKey == nil || bs[0].KemLastResort || bs[0].KemPreKey.ID != 1 || bs[0].KemRemaining != 2 {
		t.Fatalf("allowed: asked %d, bundle %+v", asked, bs[0])
	}
}

func testRotateKemLastResort(t *testing.T, open Open) {
	s := open(t, keys.Config{})
	dev, ik := newDevice(t) // registered without one
	acct, err := s.CreateAccount(ctx(), dev, nil)
	if err != nil {
		t.Fatal(err)
	}
	bs, err := s.FetchBundles(ctx(), acct, nil)
	if err != nil || bs[0].KemPreKey != nil {
		t.Fatalf("before: %+v, %v", bs, err)
	}
	for _, id := range []uint32{1, 2} {
		k := KemPreKey(t, ik, id)
		if err := s.RotateKemLastResort(ctx(), acct, 1, k); err != nil {
			t.Fatal(err)
		}
		bs, err := s.FetchBundles(ctx(), acct, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := bs[0].KemPreKey; got == nil || got.ID != id || !bytes.Equal(got.PublicKey, k.PublicKey) || !bs[0].KemLastResort {
			t.Fatalf("after rotation to %d: %+v", id, got)
		}
	}
	// Rotating the signed prekey keeps the KEM one, and the other way round.
	if err := s.RotateSignedPreKey(ctx(), acct, 1, signedPreKey(t, ik, 5)); err != nil {
		t.Fatal(err)
	}
	d, err := s.Device(ctx(), acct, 1)
	if err != nil || d.KemLastResort == nil || d.KemLastResort.ID != 2 || d.SignedPreKey.ID != 5 {
		t.Fatalf("after a signed prekey rotation: %+v, %v", d, err)
	}
	if err := s.RotateKemLastResort(ctx(), acct, 7, KemPreKey(t, ik, 3)); !errors.Is(err, keys.ErrUnknownDevice) {
		t.Fatalf("unknown device: %v", err)
	}
}
