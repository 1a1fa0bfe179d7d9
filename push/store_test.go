package push

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

func TestStoreSealsTokensAtRest(t *testing.T) {
	db := openDB(t)
	key := newSealKey(t)
	s, err := NewStore(db, key)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d := device(1)
	tok := FCMToken("fcm-registration-token-visible-in-the-clear")
	if err := s.Set(ctx, d, tok); err != nil {
		t.Fatal(err)
	}
	raw, closer, err := db.Get(storeKey(d))
	if err != nil {
		t.Fatal(err)
	}
	stored := bytes.Clone(raw)
	closer.Close()
	if bytes.Contains(stored, []byte("visible")) {
		t.Fatal("the token is stored in the clear")
	}
	got, err := s.Get(ctx, d)
	if err != nil || got != tok {
		t.Fatalf("Get = %v, %v", got, err)
	}

	// A sealed record moved to another device does not open.
	if err := db.Set(storeKey(device(2)), stored, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, device(2)); !errors.Is(err, errSealed) {
		t.Fatalf("moved record: %v, want errSealed", err)
	}
	// Another seal key does not open it either.
	other, err := NewStore(db, newSealKey(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Get(ctx, d); !errors.Is(err, errSealed) {
		t.Fatalf("other key: %v, want errSealed", err)
	}
	if _, err := NewStore(db, key[:16]); err == nil {
		t.Fatal("a 16-byte seal key was accepted")
	}
}

func TestStoreReplaceAndDeleteIf(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	d := device(1)
	old, cur := apnsTok(1), APNsToken([]byte{1, 2, 3}, "org.example", true)
	if err := s.Set(ctx, d, old); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, d, cur); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(ctx, d); got != cur {
		t.Fatalf("after replace: %v", got)
	}
	// The old token reported dead must not take the new one with it.
	if removed, err := s.DeleteIf(ctx, d, old); err != nil || removed {
		t.Fatalf("DeleteIf(old) = %v, %v", removed, err)
	}
	if removed, err := s.DeleteIf(ctx, d, cur); err != nil || !removed {
		t.Fatalf("DeleteIf(cur) = %v, %v", removed, err)
	}
	if _, err := s.Get(ctx, d); !errors.Is(err, ErrNoToken) {
		t.Fatalf("after DeleteIf: %v", err)
	}
	if err := s.Delete(ctx, d); err != nil {
		t.Fatalf("deleting a missing token: %v", err)
	}
}

func TestTokenValidation(t *testing.T) {
	bad := []Token{
		{},
		{Provider: 7, Value: "x"},
		APNsToken(nil, "org.example", false),
		APNsToken(make([]byte, 101), "org.example", false),
		APNsToken([]byte{1}, "", false),
		APNsToken([]byte{1}, "org example", false),
		APNsToken([]byte{1}, strings.Repeat("a", 256), false),
		{Provider: APNs, Value: "zz", Topic: "org.example"},
		FCMToken(""),
		FCMToken(strings.Repeat("a", 4097)),
		FCMToken("has space"),
		FCMToken("line\nbreak"),
		{Provider: FCM, Value: "ok", Topic: "org.example"},
	}
	for _, tok := range bad {
		if err := tok.Validate(); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%#v: %v, want ErrInvalidToken", tok, err)
		}
	}
	good := []Token{
		apnsTok(1),
		APNsToken(make([]byte, 100), "com.example.app-beta_2", true),
		FCMToken("cRmB9x1Z:APA91bH-abc_def.ghi"),
		FCMToken(strings.Repeat("a", 4096)),
	}
	for _, tok := range good {
		if err := tok.Validate(); err != nil {
			t.Errorf("%v: %v", tok, err)
		}
	}
}

func TestTokenRedacted(t *testing.T) {
	tok := FCMToken("secret-registration-token")
	for _, s := range []string{tok.String(), tok.Redacted(), tok.LogValue().String(), fmt.Sprintf("%#v %v %+v", tok, tok, tok)} {
		if strings.Contains(s, "registration") || !strings.Contains(s, "secr") {
			t.Errorf("redacted form %q", s)
		}
	}
}

// indexed reports whether t has an index record, and which device it
// names.
func indexed(t *testing.T, s *Store, tok Token) (Device, bool) {
	t.Helper()
	d, _, err := s.holder(context.Background(), s.indexKey(tok))
	if errors.Is(err, ErrNoToken) {
		return Device{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return d, true
}

// TestStoreTokenOnOneDevice: a token is on at most one device; the index
// follows re-registration, replacement, Delete (revoke) and DeleteIf
// (dead-token pruning), and names no token.
func TestStoreTokenOnOneDevice(t *testing.T) {
	db := openDB(t)
	s, err := NewStore(db, newSealKey(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d1, d2, d3 := device(1), device(2), device(3)
	tok := FCMToken("shared-registration-token")
	for _, d := range []Device{d1, d2, d3} {
		if err := s.Set(ctx, d, tok); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []Device{d1, d2} {
		if _, err := s.Get(ctx, d); !errors.Is(err, ErrNoToken) {
			t.Fatalf("device %d still has the token it gave up: %v", d.Account[0], err)
		}
		if _, closer, err := db.Get(storeKey(d)); err == nil {
			closer.Close()
			t.Fatalf("device %d's record was left behind", d.Account[0])
		}
	}
	if got, err := s.Get(ctx, d3); err != nil || got != tok {
		t.Fatalf("the last device: %v, %v", got, err)
	}
	if h, ok := indexed(t, s, tok); !ok || h != d3 {
		t.Fatalf("index names %v, %v", h, ok)
	}
	// Registering it again where it is changes nothing.
	if err := s.Set(ctx, d3, tok); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, d3); err != nil || got != tok {
		t.Fatalf("re-registered: %v, %v", got, err)
	}
	// The index names no token: nothing stored holds it in the clear.
	it, err := db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	for it.First(); it.Valid(); it.Next() {
		if bytes.Contains(it.Key(), []byte("shared")) || bytes.Contains(it.Value(), []byte("shared")) {
			t.Fatalf("a record holds the token in the clear: %q", it.Key())
		}
	}
	it.Close()

	// A new token on d3 frees the old one's index record.
	other := FCMToken("another-token")
	if err := s.Set(ctx, d3, other); err != nil {
		t.Fatal(err)
	}
	if _, ok := indexed(t, s, tok); ok {
		t.Fatal("the replaced token is still indexed")
	}
	// Delete (sign-out, revoke) and DeleteIf (a dead token) free it too.
	if err := s.Delete(ctx, d3); err != nil {
		t.Fatal(err)
	}
	if _, ok := indexed(t, s, other); ok {
		t.Fatal("a deleted token is still indexed")
	}
	if err := s.Set(ctx, d1, tok); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.DeleteIf(ctx, d1, tok); err != nil || !ok {
		t.Fatalf("DeleteIf = %v, %v", ok, err)
	}
	if _, ok := indexed(t, s, tok); ok {
		t.Fatal("a dead token is still indexed")
	}
	// A device's Delete does not free a token another device now holds.
	if err := s.Set(ctx, d1, tok); err != nil {
		t.Fatal(err)
	}
	if err := db.Set(storeKey(d2), mustSeal(t, s, d2, tok), pebble.Sync); err != nil { // a stale copy
		t.Fatal(err)
	}
	if err := s.Delete(ctx, d2); err != nil {
		t.Fatal(err)
	}
	if h, ok := indexed(t, s, tok); !ok || h != d1 {
		t.Fatalf("another device's delete took the index: %v, %v", h, ok)
	}

	// Records from before the index: the first device read claims the
	// token, the other has none.
	legacy := FCMToken("stored-before-the-index")
	for _, d := range []Device{d2, d3} {
		if err := db.Set(storeKey(d), mustSeal(t, s, d, legacy), pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.Get(ctx, d2); err != nil || got != legacy {
		t.Fatalf("legacy record: %v, %v", got, err)
	}
	if _, err := s.Get(ctx, d3); !errors.Is(err, ErrNoToken) {
		t.Fatalf("a second legacy device with the same token: %v, want ErrNoToken", err)
	}
}

// mustSeal is d's record for tok, as Set writes it.
func mustSeal(t *testing.T, s *Store, d Device, tok Token) []byte {
	t.Helper()
	rec, err := s.seal(storeKey(d), sealToken(tok))
	if err != nil {
		t.Fatal(err)
	}
	return rec
}
