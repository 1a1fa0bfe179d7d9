package natscluster

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pigeonhole/pigeonhole/relay"
)

// TestStartDespiteFailedHeartbeat: when the first heartbeat cannot be
// written (here the presence stream refuses every message, as a
// JetStream cluster still electing its leader fails writes), Start
// still succeeds, and the heartbeat lands once writes work again.
func TestStartDespiteFailedHeartbeat(t *testing.T) {
	url := startNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	c, err := New(ctx, connect(t, url), Config{ClusterKey: testKey, Heartbeat: 50 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(connect(t, url))
	if err != nil {
		t.Fatal(err)
	}
	setMaxMsgSize := func(n int32) {
		t.Helper()
		st, err := js.Stream(ctx, "KV_PIGEONHOLE_PRESENCE")
		if err != nil {
			t.Fatal(err)
		}
		cfg := st.CachedInfo().Config
		cfg.MaxMsgSize = n
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	setMaxMsgSize(1)
	if err := c.beat(ctx); err == nil {
		t.Fatal("a heartbeat was written to a stream that refuses it: the test proves nothing")
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	if err := c.Start(runCtx, relay.ClusterHandlers{}); err != nil {
		t.Fatalf("start with the first heartbeat failing: %v", err)
	}
	setMaxMsgSize(-1)
	kv, err := js.KeyValue(ctx, "PIGEONHOLE_PRESENCE")
	if err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := kv.Get(ctx, "r."+c.ID()); err == nil {
			return
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatal("no heartbeat after the stream took writes again")
		}
	}
}
