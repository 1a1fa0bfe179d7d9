package relay_test

import (
	"bytes"
	"sync"
	"testing"

	"go.mau.fi/libsignal/serialize"
	"go.mau.fi/libsignal/util/keyhelper"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/spec"
)

// TestConcurrentClaimsHandOutEachPreKeyOnce fetches one account's keys
// from many connections at once and checks no one-time prekey is ever
// handed out twice.
func TestConcurrentClaimsHandOutEachPreKeyOnce(t *testing.T) {
	r := startRelay(t, testConfig())
	const prekeys, fetchers, perFetcher = 60, 8, 10
	bob := r.register(t, prekeys)
	var (
		mu     sync.Mutex
		seen   = map[uint32]int{}
		absent int
		wg     sync.WaitGroup
	)
	for range fetchers {
		fetcher := r.register(t, 0)
		c := r.session(t, fetcher, 0)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perFetcher {
				ks, err := c.FetchKeys(ctxT(t), bob.AccountID)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if pk := ks.Devices[0].PreKey; pk != nil {
					seen[pk.ID]++
				} else {
					absent++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != prekeys {
		t.Fatalf("%d distinct prekeys handed out, want %d", len(seen), prekeys)
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("prekey %d handed out %d times", id, n)
		}
	}
	if absent != fetchers*perFetcher-prekeys {
		t.Fatalf("%d bundles without a prekey, want %d", absent, fetchers*perFetcher-prekeys)
	}
}

func TestPreKeysLowNotice(t *testing.T) {
	r := startRelay(t, testConfig())
	alice, bob := r.register(t, 0), r.register(t, 11)
	bc := r.session(t, bob, 4)
	nextKind(t, bc, client.EventDrained)
	ac := r.session(t, alice, 0)
	for range 2 {
		if _, err := ac.FetchKeys(ctxT(t), bob.AccountID); err != nil {
			t.Fatal(err)
		}
	}
	// 11 -> 10 is not below the threshold of 10; 10 -> 9 is.
	if ev := nextKind(t, bc, client.EventPreKeysLow); ev.PreKeysRemaining != 9 {
		t.Fatalf("remaining %d, want 9", ev.PreKeysRemaining)
	}
	reg, _ := newRegistration(t, 50)
	n, err := bc.UploadPreKeys(ctxT(t), reg.PreKeys[20:])
	if err != nil || n != 39 {
		t.Fatalf("refill: %d %v", n, err)
	}
	// A device that opens a session with few prekeys is told at once.
	carol := r.register(t, 2)
	cc := r.session(t, carol, 4)
	if ev := nextKind(t, cc, client.EventPreKeysLow); ev.PreKeysRemaining != 2 {
		t.Fatalf("remaining %d, want 2", ev.PreKeysRemaining)
	}
}

func TestRotateSignedPreKey(t *testing.T) {
	r := startRelay(t, testConfig())
	alice, bob := r.register(t, 0), r.register(t, 0)
	bc := r.session(t, bob, 0)
	// A signed prekey signed by another identity is refused.
	other, _ := newRegistration(t, 0)
	wantCode(t, bc.RotateSignedPreKey(ctxT(t), other.SignedPreKey), spec.CodeBadPreKeySignature)
	ac := r.session(t, alice, 0)
	before, err := ac.FetchKeys(ctxT(t), bob.AccountID)
	if err != nil {
		t.Fatal(err)
	}
	if before.Devices[0].SignedPreKey.ID != 1 {
		t.Fatalf("signed prekey id %d", before.Devices[0].SignedPreKey.ID)
	}
	spk, err := keyhelper.GenerateSignedPreKey(bob.identity, 2, serialize.NewProtoBufSerializer().SignedPreKeyRecord)
	if err != nil {
		t.Fatal(err)
	}
	sig := spk.Signature()
	next := client.SignedPreKey{ID: 2, PublicKey: spk.KeyPair().PublicKey().Serialize(), Signature: sig[:]}
	if err := bc.RotateSignedPreKey(ctxT(t), next); err != nil {
		t.Fatal(err)
	}
	after, err := ac.FetchKeys(ctxT(t), bob.AccountID)
	if err != nil {
		t.Fatal(err)
	}
	if got := after.Devices[0].SignedPreKey; got.ID != 2 || !bytes.Equal(got.PublicKey, next.PublicKey) {
		t.Fatalf("after rotation the bundle has signed prekey %d", got.ID)
	}
}
