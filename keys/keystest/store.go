package keystest

import (
	"cmp"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/pigeonhole/pigeonhole/keys"
)

func testFetchClaimsEachPreKeyThenNone(t *testing.T, open Open) {
	s := open(t, keys.Config{})
	dev, _ := newDevice(t)
	acct, err := s.CreateAccount(ctx(), dev, preKeys(t, 1, 2))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []struct {
		id        uint32
		remaining int
	}{{1, 1}, {2, 0}} {
		bs, err := s.FetchBundles(ctx(), acct, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(bs) != 1 || bs[0].DeviceID != 1 || bs[0].PreKey == nil || bs[0].PreKey.ID != want.id || bs[0].Remaining != want.remaining {
			t.Fatalf("fetch %d: %+v", i, bs)
		}
		if string(bs[0].IdentityKey) != string(dev.IdentityKey) || bs[0].RegistrationID != dev.RegistrationID {
			t.Fatalf("fetch %d: bundle does not carry the device's keys", i)
		}
	}
	bs, err := s.FetchBundles(ctx(), acct, nil)
	if err != nil {
		t.Fatal(err)
	}
	if bs[0].PreKey != nil || bs[0].SignedPreKey.ID != 1 {
		t.Fatalf("exhausted device: %+v", bs[0])
	}
}

func testSignedPreKeyMustVerify(t *testing.T, open Open) {
	s := open(t, keys.Config{})
	dev, _ := newDevice(t)
	_, other := newDevice(t)
	forged := dev
	forged.SignedPreKey = signedPreKey(t, other, 1)
	if _, err := s.CreateAccount(ctx(), forged, nil); !errors.Is(err, keys.ErrBadSignature) {
		t.Fatalf("signed by another identity: %v", err)
	}
	flipped := dev
	flipped.SignedPreKey.Signature = append([]byte(nil), dev.SignedPreKey.Signature...)
	flipped.SignedPreKey.Signature[10] ^= 1
	if _, err := s.CreateAccount(ctx(), flipped, nil); !errors.Is(err, keys.ErrBadSignature) {
		t.Fatalf("flipped bit: %v", err)
	}
	if _, err := s.CreateAccount(ctx(), dev, nil); err != nil {
		t.Fatalf("good device: %v", err)
	}
}

// TestMalformedKeysAreRefused feeds keys that would make libsignal's
// ecc.DecodePoint panic or misread them.
func testMalformedKeysAreRefused(t *testing.T, open Open) {
	s := open(t, keys.Config{})
	good, _ := newDevice(t)
	for name, mutate := range map[string]func(d *keys.Device){
		"empty identity":     func(d *keys.Device) { d.IdentityKey = nil },
		"short identity":     func(d *keys.Device) { d.IdentityKey = d.IdentityKey[:20] },
		"wrong key type":     func(d *keys.Device) { d.IdentityKey = append([]byte{0x04}, d.IdentityKey[1:]...) },
		"empty signed key":   func(d *keys.Device) { d.SignedPreKey.PublicKey = nil },
		"short auth key":     func(d *keys.Device) { d.AuthKey = d.AuthKey[:31] },
		"no signature":       func(d *keys.Device) { d.SignedPreKey.Signature = nil },
		"long signed prekey": func(d *keys.Device) { d.SignedPreKey.PublicKey = append(d.SignedPreKey.PublicKey, 0) },
	} {
		d := good
		mutate(&d)
		_, err := s.CreateAccount(ctx(), d, nil)
		if !errors.Is(err, keys.ErrInvalidKey) && !errors.Is(err, keys.ErrBadSignature) {
			t.Errorf("%s: %v", name, err)
		}
	}
	bad := preKeys(t, 1, 2)
	bad[1].PublicKey = bad[1].PublicKey[:32]
	if _, err := s.CreateAccount(ctx(), good, bad); !errors.Is(err, keys.ErrInvalidKey) {
		t.Errorf("short one-time prekey: %v", err)
	}
}

func testPreKeyLimits(t *testing.T, open Open) {
	s := open(t, keys.Config{MaxPreKeys: 150})
	dev, _ := newDevice(t)
	if _, err := s.CreateAccount(ctx(), dev, preKeys(t, 1, 101)); !errors.Is(err, keys.ErrTooManyPreKeys) {
		t.Fatalf("batch of 101: %v", err)
	}
	acct, err := s.CreateAccount(ctx(), dev, preKeys(t, 1, 100))
	if err != nil {
		t.Fatal(err)
	}
	// Replacing stored ids does not count twice.
	if n, err := s.AddPreKeys(ctx(), acct, 1, preKeys(t, 51, 100)); err != nil || n != 150 {
		t.Fatalf("add 51..150: %d %v", n, err)
	}
	if _, err := s.AddPreKeys(ctx(), acct, 1, preKeys(t, 151, 1)); !errors.Is(err, keys.ErrTooManyPreKeys) {
		t.Fatalf("over the cap: %v", err)
	}
	if n, err := s.PreKeyCount(ctx(), acct, 1); err != nil || n != 150 {
		t.Fatalf("count %d %v", n, err)
	}
}

// TestConcurrentClaimsNeverRepeat has many fetchers race for a device's
// prekeys: every key is handed out exactly once.
//
// It tells slow from wrong: the fetches share one generous deadline
// (a loaded 2-core machine running the whole suite with -race can be
// many times slower than an idle one), and a fetch that runs out of time
// is reported as slowness, apart from the checks of what was handed out.
// A key handed out twice fails the test whatever the timing; and every key
// must be accounted for: handed out once, still stored, or claimed by a
// fetch that failed before it could return it (at most one per failure).
func testConcurrentClaimsNeverRepeat(t *testing.T, open Open) {
	s := open(t, keys.Config{})
	dev, _ := newDevice(t)
	acct, err := s.CreateAccount(ctx(), dev, preKeys(t, 1, 100))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddPreKeys(ctx(), acct, 1, preKeys(t, 101, 100)); err != nil {
		t.Fatal(err)
	}
	const fetchers, each, stored = 50, 5, 200 // 250 claims for 200 keys
	fctx, cancel := context.WithTimeout(ctx(), 2*time.Minute)
	defer cancel()
	var (
		mu      sync.Mutex
		seen    = map[uint32]int{}
		without int
		slow    int   // fetches that ran out of time
		failed  error // the first fetch that failed otherwise
		wg      sync.WaitGroup
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
				case bs[0].PreKey == nil:
					without++
				default:
					seen[bs[0].PreKey.ID]++
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
			t.Errorf("wrong: prekey %d handed out %d times", id, n)
		}
	}
	if failed != nil {
		t.Fatalf("a fetch failed: %v", failed)
	}
	left, err := s.PreKeyCount(ctx(), acct, 1)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(seen) + left; n > stored || n < stored-slow {
		t.Fatalf("wrong: %d keys handed out and %d left of %d stored (%d fetches timed out)", len(seen), left, stored, slow)
	}
	if slow > 0 {
		t.Fatalf("slow, not wrong: %d of %d fetches ran out of their 2-minute deadline; no key was handed out twice", slow, fetchers*each)
	}
	if len(seen) != stored || without != fetchers*each-stored {
		t.Fatalf("wrong: %d distinct keys handed out, %d bundles without one", len(seen), without)
	}
}

func testRotateSignedPreKey(t *testing.T, open Open) {
	s := open(t, keys.Config{})
	dev, ik := newDevice(t)
	acct, err := s.CreateAccount(ctx(), dev, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, other := newDevice(t)
	if err := s.RotateSignedPreKey(ctx(), acct, 1, signedPreKey(t, other, 2)); !errors.Is(err, keys.ErrBadSignature) {
		t.Fatalf("foreign signature: %v", err)
	}
	if err := s.RotateSignedPreKey(ctx(), acct, 1, signedPreKey(t, ik, 2)); err != nil {
		t.Fatal(err)
	}
	d, err := s.Device(ctx(), acct, 1)
	if err != nil || d.SignedPreKey.ID != 2 {
		t.Fatalf("after rotation: %d %v", d.SignedPreKey.ID, err)
	}
	if err := s.RotateSignedPreKey(ctx(), acct, 7, signedPreKey(t, ik, 3)); !errors.Is(err, keys.ErrUnknownDevice) {
		t.Fatalf("unknown device: %v", err)
	}
}

func testDevicesAddRemove(t *testing.T, open Open) {
	s := open(t, keys.Config{MaxDevices: 3})
	dev, _ := newDevice(t)
	acct, err := s.CreateAccount(ctx(), dev, nil)
	if err != nil {
		t.Fatal(err)
	}
	var unknown keys.AccountID
	if _, err := s.DeviceIDs(ctx(), unknown); !errors.Is(err, keys.ErrUnknownAccount) {
		t.Fatalf("unknown account: %v", err)
	}
	for want := uint32(2); want <= 3; want++ {
		d, _ := newDevice(t)
		id, err := s.AddDevice(ctx(), acct, d, preKeys(t, 1, 3))
		if err != nil || id != want {
			t.Fatalf("add device: %d %v, want %d", id, err, want)
		}
	}
	d4, _ := newDevice(t)
	if _, err := s.AddDevice(ctx(), acct, d4, nil); !errors.Is(err, keys.ErrTooManyDevices) {
		t.Fatalf("fourth device: %v", err)
	}
	if err := s.RemoveDevice(ctx(), acct, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Device(ctx(), acct, 2); !errors.Is(err, keys.ErrUnknownDevice) {
		t.Fatalf("removed device: %v", err)
	}
	if _, err := s.PreKeyCount(ctx(), acct, 2); !errors.Is(err, keys.ErrUnknownDevice) {
		t.Fatalf("removed device's prekeys: %v", err)
	}
	id, err := s.AddDevice(ctx(), acct, d4, nil)
	if err != nil || id != 4 {
		t.Fatalf("ids are not reused: got %d %v", id, err)
	}
	ids, err := s.DeviceIDs(ctx(), acct)
	if err != nil || len(ids) != 3 || ids[0] != 1 || ids[1] != 3 || ids[2] != 4 {
		t.Fatalf("device ids %v %v", ids, err)
	}
	bs, err := s.FetchBundles(ctx(), acct, nil)
	if err != nil || len(bs) != 3 {
		t.Fatalf("bundles %d %v", len(bs), err)
	}
}

// testRefusedClaimKeepsPreKeys: a device that mayClaim refuses gets a
// bundle without a one-time prekey and keeps all of its prekeys; the
// other devices of the account are claimed from as usual, and mayClaim is
// asked once per device that has a prekey.
func testRefusedClaimKeepsPreKeys(t *testing.T, open Open) {
	s := open(t, keys.Config{})
	d1, _ := newDevice(t)
	acct, err := s.CreateAccount(ctx(), d1, preKeys(t, 1, 3))
	if err != nil {
		t.Fatal(err)
	}
	d2, _ := newDevice(t)
	id2, err := s.AddDevice(ctx(), acct, d2, preKeys(t, 1, 3))
	if err != nil {
		t.Fatal(err)
	}
	d3, _ := newDevice(t)
	id3, err := s.AddDevice(ctx(), acct, d3, nil)
	if err != nil {
		t.Fatal(err)
	}
	asked := map[uint32]int{}
	bs, err := s.FetchBundles(ctx(), acct, func(dev uint32) bool {
		asked[dev]++
		return dev != 1
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 3 || asked[1] != 1 || asked[id2] != 1 || asked[id3] != 0 {
		t.Fatalf("bundles %+v, asked %v", bs, asked)
	}
	for _, b := range bs {
		switch b.DeviceID {
		case 1:
			if b.PreKey != nil || b.Remaining != 3 || b.SignedPreKey.ID != d1.SignedPreKey.ID {
				t.Fatalf("refused device: %+v", b)
			}
		case id2:
			if b.PreKey == nil || b.PreKey.ID != 1 || b.Remaining != 2 {
				t.Fatalf("allowed device: %+v", b)
			}
		case id3:
			if b.PreKey != nil || b.Remaining != 0 {
				t.Fatalf("device without prekeys: %+v", b)
			}
		}
	}
	if n, err := s.PreKeyCount(ctx(), acct, 1); err != nil || n != 3 {
		t.Fatalf("refused device holds %d prekeys (%v), want 3", n, err)
	}
	// Allowed again, the device's lowest prekey is claimed.
	bs, err = s.FetchBundles(ctx(), acct, nil)
	if err != nil {
		t.Fatal(err)
	}
	if bs[0].DeviceID != 1 || bs[0].PreKey == nil || bs[0].PreKey.ID != 1 || bs[0].Remaining != 2 {
		t.Fatalf("after the refusal: %+v", bs[0])
	}
}
