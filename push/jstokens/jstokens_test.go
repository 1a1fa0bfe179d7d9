package jstokens_test

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pigeonhole/pigeonhole/push"
	"github.com/pigeonhole/pigeonhole/push/jstokens"
)

func startNATS(t *testing.T) *nats.Conn {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(ns.Shutdown)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// TestTwoRelaysShareTokens: a token set through one relay's store is
// read through another's; a dead token reported through one relay does
// not delete a newer token set through the other.
func TestTwoRelaysShareTokens(t *testing.T) {
	nc := startNATS(t)
	ctx := context.Background()
	key := make([]byte, push.SealKeySize)
	rand.Read(key)
	var stores []*push.Store
	for range 2 {
		recs, err := jstokens.Open(ctx, nc, "TOKENS", 1)
		if err != nil {
			t.Fatal(err)
		}
		s, err := push.NewStoreOn(recs, key)
		if err != nil {
			t.Fatal(err)
		}
		stores = append(stores, s)
	}
	a, b := stores[0], stores[1]
	d := push.Device{ID: 1}
	d.Account[0] = 7
	old := push.Token{Provider: push.APNs, Topic: "org.example", Value: "aa11"}
	if err := a.Set(ctx, d, old); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(ctx, d); err != nil || got != old {
		t.Fatalf("read through the other relay: %+v, %v", got, err)
	}
	newer := push.Token{Provider: push.APNs, Topic: "org.example", Value: "bb22"}
	if err := b.Set(ctx, d, newer); err != nil {
		t.Fatal(err)
	}
	if deleted, err := a.DeleteIf(ctx, d, old); err != nil || deleted {
		t.Fatalf("a dead old token deleted the newer one: %v, %v", deleted, err)
	}
	if deleted, err := a.DeleteIf(ctx, d, newer); err != nil || !deleted {
		t.Fatalf("delete of the current token: %v, %v", deleted, err)
	}
	if _, err := b.Get(ctx, d); err != push.ErrNoToken {
		t.Fatalf("after delete: %v, want ErrNoToken", err)
	}
	// Another seal key cannot open the records.
	other := make([]byte, push.SealKeySize)
	rand.Read(other)
	recs, _ := jstokens.Open(ctx, nc, "TOKENS", 1)
	wrong, _ := push.NewStoreOn(recs, other)
	if err := a.Set(ctx, d, old); err != nil {
		t.Fatal(err)
	}
	if _, err := wrong.Get(ctx, d); err == nil {
		t.Fatal("a store with another seal key read the token")
	}
}

// TestTokenMovesAcrossRelays: a token registered on a second device
// through another relay leaves the first device; deleting it on the
// device that holds it frees it for good; the index is kept in the same
// bucket, under keys that name no token.
func TestTokenMovesAcrossRelays(t *testing.T) {
	nc := startNATS(t)
	ctx := context.Background()
	key := make([]byte, push.SealKeySize)
	rand.Read(key)
	var stores []*push.Store
	for range 2 {
		recs, err := jstokens.Open(ctx, nc, "TOKENS", 1)
		if err != nil {
			t.Fatal(err)
		}
		s, err := push.NewStoreOn(recs, key)
		if err != nil {
			t.Fatal(err)
		}
		stores = append(stores, s)
	}
	a, b := stores[0], stores[1]
	d1, d2 := push.Device{ID: 1}, push.Device{ID: 1}
	d1.Account[0], d2.Account[0] = 1, 2
	tok := push.FCMToken("one-phone-registration-token")
	if err := a.Set(ctx, d1, tok); err != nil {
		t.Fatal(err)
	}
	if err := b.Set(ctx, d2, tok); err != nil {
		t.Fatal(err)
	}
	for _, s := range stores {
		if _, err := s.Get(ctx, d1); err != push.ErrNoToken {
			t.Fatalf("the first device kept the moved token: %v", err)
		}
		if got, err := s.Get(ctx, d2); err != nil || got != tok {
			t.Fatalf("the second device: %v, %v", got, err)
		}
	}
	// Back to d1 through relay a, then dead on d1 (pruned through b).
	if err := a.Set(ctx, d1, tok); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, d2); err != push.ErrNoToken {
		t.Fatalf("the token stayed on d2: %v", err)
	}
	if ok, err := b.DeleteIf(ctx, d1, tok); err != nil || !ok {
		t.Fatalf("DeleteIf = %v, %v", ok, err)
	}
	for _, d := range []push.Device{d1, d2} {
		if _, err := a.Get(ctx, d); err != push.ErrNoToken {
			t.Fatalf("device %d after the token died: %v", d.Account[0], err)
		}
	}
	// Set again after the purge (the index record is created anew).
	if err := b.Set(ctx, d2, tok); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Get(ctx, d2); err != nil || got != tok {
		t.Fatalf("set after a purge: %v, %v", got, err)
	}
	if err := a.Delete(ctx, d2); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, d2); err != push.ErrNoToken {
		t.Fatalf("after delete: %v", err)
	}

	// Nothing in the bucket holds the token in the clear.
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, "TOKENS")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Set(ctx, d1, tok); err != nil {
		t.Fatal(err)
	}
	names, err := kv.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for name := range names.Keys() {
		n++
		e, err := kv.Get(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(name, "phone") || strings.Contains(string(e.Value()), "phone") {
			t.Fatalf("bucket record %s holds the token in the clear", name)
		}
	}
	if n != 2 {
		t.Fatalf("%d records for one device with one token, want 2 (the token and its index)", n)
	}
}
