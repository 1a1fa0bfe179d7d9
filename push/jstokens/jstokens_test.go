package jstokens_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

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
