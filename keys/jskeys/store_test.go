package jskeys_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/pigeonhole/pigeonhole/keys"
	"github.com/pigeonhole/pigeonhole/keys/jskeys"
	"github.com/pigeonhole/pigeonhole/keys/keystest"
)

// startNATS runs a one-node JetStream server on 127.0.0.1 for the test
// and connects to it.
func startNATS(t testing.TB) *nats.Conn {
	t.Helper()
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		NoLog: true, NoSigs: true,
	})
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

// testKey is the tests' cluster key.
var testKey = bytes.Repeat([]byte{0x42}, jskeys.ClusterKeySize)

func open(t testing.TB, nc *nats.Conn, cfg keys.Config) *jskeys.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := jskeys.Open(ctx, nc, jskeys.Config{
		MaxPreKeys: cfg.MaxPreKeys, MaxBatch: cfg.MaxBatch, MaxDevices: cfg.MaxDevices, Now: cfg.Now,
		ClusterKey: testKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestBehaviour runs the tests every key directory passes (the Pebble
// store runs the same ones).
func TestBehaviour(t *testing.T) {
	keystest.Run(t, func(t *testing.T, cfg keys.Config) keystest.Directory {
		return open(t, startNATS(t), cfg)
	})
}
