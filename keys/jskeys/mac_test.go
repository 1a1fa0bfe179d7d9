package jskeys_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pigeonhole/pigeonhole/keys/jskeys"
	"github.com/pigeonhole/pigeonhole/keys/keystest"
)

// TestForgedRecords: someone with write access to the bucket but not the
// cluster key rewrites records. Each forgery is refused with ErrBadRecord
// and counted by kind; the genuine directory keeps working.
func TestForgedRecords(t *testing.T) {
	nc := startNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var (
		mu       sync.Mutex
		rejected = map[string]int{}
	)
	s, err := jskeys.Open(ctx, nc, jskeys.Config{ClusterKey: testKey, Rejected: func(kind string) {
		mu.Lock()
		defer mu.Unlock()
		rejected[kind]++
	}})
	if err != nil {
		t.Fatal(err)
	}
	dev, _ := keystest.NewDevice(t)
	pks := keystest.PreKeys(t, 1, 3)
	victim, err := s.CreateAccount(ctx, dev, pks)
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.CreateAccount(ctx, dev, pks)
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, "PIGEONHOLE_KEYS")
	if err != nil {
		t.Fatal(err)
	}
	accountKey := "a." + victim.Hex()
	e, err := kv.Get(ctx, accountKey)
	if err != nil {
		t.Fatal(err)
	}
	genuine := e.Value()
	attackerKey, _, _ := ed25519.GenerateKey(rand.Reader)
	old := []byte(`"AuthKey":"`)
	if !bytes.Contains(genuine, old) {
		t.Fatalf("the account record has no AuthKey field: %q", genuine)
	}
	forged := []byte(`{"next":2,"devices":{"1":{"ID":1,"AuthKey":"` + b64(attackerKey) + `"}}}`)
	otherRec, err := kv.Get(ctx, "a."+other.Hex())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		value []byte
	}{
		{"plain JSON with the attacker's auth key", forged},
		{"the attacker's JSON with the genuine tag", append(append([]byte{}, forged...), genuine[len(genuine)-32:]...)},
		{"another account's genuine record", otherRec.Value()},
		{"empty", nil},
	} {
		if _, err := kv.Put(ctx, accountKey, tc.value); err != nil {
			t.Fatal(err)
		}
		if d, err := s.Device(ctx, victim, 1); !errors.Is(err, jskeys.ErrBadRecord) {
			t.Errorf("%s: Device = %x, %v; want ErrBadRecord", tc.name, d.AuthKey, err)
		}
		if _, err := s.FetchBundles(ctx, victim, nil); !errors.Is(err, jskeys.ErrBadRecord) {
			t.Errorf("%s: FetchBundles: %v; want ErrBadRecord", tc.name, err)
		}
	}
	// A forged prekey record.
	if _, err := kv.Put(ctx, "p."+other.Hex()+".1", []byte(`[{"ID":7,"PublicKey":"BQ=="}]`)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FetchBundles(ctx, other, nil); !errors.Is(err, jskeys.ErrBadRecord) {
		t.Errorf("forged prekeys: FetchBundles: %v; want ErrBadRecord", err)
	}
	// Put back, the genuine record is trusted again.
	if _, err := kv.Put(ctx, accountKey, genuine); err != nil {
		t.Fatal(err)
	}
	if d, err := s.Device(ctx, victim, 1); err != nil || !bytes.Equal(d.AuthKey, dev.AuthKey) {
		t.Fatalf("the genuine record: %x, %v", d.AuthKey, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if rejected["account"] != 8 || rejected["prekeys"] != 1 {
		t.Errorf("rejections counted %v, want account 8, prekeys 1", rejected)
	}
}

// TestClusterKeyRequired: no key, a short key, and a relay with another
// key.
func TestClusterKeyRequired(t *testing.T) {
	nc := startNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := jskeys.Open(ctx, nc, jskeys.Config{}); !errors.Is(err, jskeys.ErrNoClusterKey) {
		t.Errorf("Open without a key: %v, want ErrNoClusterKey", err)
	}
	if _, err := jskeys.Open(ctx, nc, jskeys.Config{ClusterKey: testKey[:16]}); err == nil {
		t.Error("Open with a 16-byte key succeeded")
	}
	s, err := jskeys.Open(ctx, nc, jskeys.Config{ClusterKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	dev, _ := keystest.NewDevice(t)
	pks := keystest.PreKeys(t, 1, 1)
	a, err := s.CreateAccount(ctx, dev, pks)
	if err != nil {
		t.Fatal(err)
	}
	wrong := bytes.Repeat([]byte{1}, jskeys.ClusterKeySize)
	s2, err := jskeys.Open(ctx, nc, jskeys.Config{ClusterKey: wrong})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Device(ctx, a, 1); !errors.Is(err, jskeys.ErrBadRecord) {
		t.Errorf("a relay with another cluster key read %v, want ErrBadRecord", err)
	}
	if _, err := s.Device(ctx, a, 1); err != nil {
		t.Errorf("the right key: %v", err)
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
