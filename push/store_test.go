package push

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
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
