package main

import (
	"syscall"
	"testing"
	"time"

	"github.com/pigeonhole/pigeonhole/relay/client"
)

// crashedDeadline bounds a send, through a client.Client whose connection
// died with its relay, once the relay is back. It is far below the 60 s
// QUIC idle timeout, which is what the client would otherwise wait for.
const crashedDeadline = 15 * time.Second

// TestSendAfterRelayCrash kills the relay (SIGKILL: no going-away close)
// under a client.Client that keeps its connection, restarts the relay on
// the same address and data, and sends. The restarted relay answers the
// first packet on the dead connection with a stateless reset (its reset
// key is derived from its TLS key, so it is the same after the restart),
// so the client gives up the dead connection at once and the send goes
// through on a new one, within crashedDeadline rather than after the
// idle timeout.
func TestSendAfterRelayCrash(t *testing.T) {
	data := t.TempDir()
	p := startRelayProc(t, data)
	alice, bob := registerProc(t, p.opts), registerProc(t, p.opts)
	al := client.New(&p.opts, alice, 0)
	defer al.Close()
	if _, err := al.Send(testCtx(t), textTo(bob, msgID(), "before")); err != nil {
		t.Fatal(err)
	}
	if err := p.kill(t, syscall.SIGKILL); err == nil {
		t.Fatal("relay exited cleanly after SIGKILL")
	}
	p = startRelayProc(t, data, "-listen", p.opts.Addr)
	start := time.Now()
	res := make(chan error, 1)
	go func() {
		_, err := al.Send(testCtx(t), textTo(bob, msgID(), "after"))
		res <- err
	}()
	timer := time.NewTimer(crashedDeadline)
	defer timer.Stop()
	select {
	case err := <-res:
		if err != nil {
			t.Fatal(err)
		}
	case <-timer.C:
		t.Fatalf("send after the restart: no answer within %v (the client is still on the dead connection)", crashedDeadline)
	}
	t.Logf("send after the restart answered in %v", time.Since(start))
	bc := sessionProc(t, p.opts, bob, 16)
	for _, want := range []string{"before", "after"} {
		if env := nextEnv(t, bc, true); string(env.Content) != want {
			t.Fatalf("bob got %q, want %q", env.Content, want)
		}
	}
}
