package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/pigeonhole/pigeonhole/push/pushtest"
	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/relaytest"
)

// setToken gives a device an APNs token and returns it in hex.
func setToken(t *testing.T, opts client.Options, cr *client.Credentials) string {
	t.Helper()
	tok := make([]byte, 32)
	rand.Read(tok)
	c := sessionProc(t, opts, cr, 0)
	if err := c.SetAPNsToken(testCtx(t), tok, "org.pigeonhole.test", false); err != nil {
		t.Fatal(err)
	}
	c.Close()
	return hex.EncodeToString(tok)
}

// storedEnv waits for the next stored envelope (seq > 0), skipping
// online-only ones.
func storedEnv(t *testing.T, c *client.Conn) *client.Envelope {
	t.Helper()
	for {
		env := nextEnv(t, c, false)
		if env.Seq != 0 {
			return env
		}
	}
}

// TestClusterPresence: two relays on a three-node cluster, with push
// through a local APNs endpoint and tokens in the cluster.
//   - Bob gave his token through relay A and is connected to relay B:
//     sends through A reach him on B and push nothing (an online-only send
//     through A reaches him too), while offline Carol is pushed.
//   - Bob links a laptop through relay B with a code his phone made
//     through relay A; his phone revokes it through A, and the laptop's
//     connection to B is closed.
//   - Relay B is killed: within the presence expiry relay A counts Bob as
//     offline and pushes him again.
func TestClusterPresence(t *testing.T) {
	a := pushtest.NewAPNs(t)
	dir := t.TempDir()
	files := map[string][]byte{"apns.p8": a.AuthKey, "apns-ca.pem": a.CertPEM, "token.key": make([]byte, 32)}
	rand.Read(files["token.key"])
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	nc := startNATSCluster(t, 3)
	flags := append(nc.storeFlags(), "-nats-replicas", "3", "-media", "off", "-presence-expiry", "1s",
		"-apns-key", filepath.Join(dir, "apns.p8"), "-apns-key-id", a.KeyID, "-apns-team-id", a.TeamID,
		"-apns-host", a.URL, "-push-ca", filepath.Join(dir, "apns-ca.pem"),
		"-push-token-key", filepath.Join(dir, "token.key"), "-push-window", "1ms")
	ra := startRelayProc(t, t.TempDir(), flags...)
	rb := startRelayProc(t, t.TempDir(), flags...)

	alice := registerProc(t, ra.opts)
	bob, bobIK := registerIK(t, ra.opts, 5)
	carol := registerProc(t, ra.opts)
	bobTok, carolTok := setToken(t, ra.opts, bob), setToken(t, ra.opts, carol)
	ac := sessionProc(t, ra.opts, alice, 0)
	quick := rb.opts
	quick.KeepAlive = time.Second // notice relay B's death quickly
	bc := sessionProc(t, quick, bob, 64)

	// Relay A learns that Bob is on B: an online-only send through A
	// reaches him once it has.
	deadline := time.Now().Add(patience)
	for {
		res, err := ac.Send(testCtx(t), &client.Message{Recipient: bob.AccountID, ClientMessageID: msgID(), OnlineOnly: true,
			Devices: []client.DeviceMessage{{DeviceID: 1, Type: 2, Content: []byte("typing")}}})
		if err != nil {
			t.Fatal(err)
		}
		if res.Reached == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("relay A never saw Bob's session on relay B")
		}
	}
	if env := nextEnv(t, bc, false); env.Seq != 0 || string(env.Content) != "typing" {
		t.Fatalf("Bob got %q (seq %d), want the online-only message", env.Content, env.Seq)
	}
	if _, err := ac.Send(testCtx(t), textTo(bob, msgID(), "live")); err != nil {
		t.Fatal(err)
	}
	if env := storedEnv(t, bc); string(env.Content) != "live" {
		t.Fatalf("Bob got %q", env.Content)
	} else if err := bc.Ack(env.Seq); err != nil {
		t.Fatal(err)
	}
	// Control: Carol is offline and is pushed; hers is the first push
	// APNs sees, so Bob got none.
	if _, err := ac.Send(testCtx(t), textTo(carol, msgID(), "hi")); err != nil {
		t.Fatal(err)
	}
	if req := a.Next(t, patience); req.Token != carolTok {
		t.Fatalf("the first push went to %s…, not to offline Carol: connected Bob was pushed", req.Token[:8])
	}

	// Linking across relays, and a revoke that reaches the other relay.
	phone := sessionProc(t, ra.opts, bob, 0)
	code, _, err := phone.CreateLinkCode(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	lreg, err := relaytest.NewLinkedRegistration(bobIK, 5)
	if err != nil {
		t.Fatal(err)
	}
	lc, err := client.Dial(testCtx(t), &rb.opts)
	if err != nil {
		t.Fatal(err)
	}
	acct, err := lc.LinkDevice(testCtx(t), bob.AccountID, code, lreg, nil)
	lc.Close()
	if err != nil || acct.DeviceID != 2 {
		t.Fatalf("link through relay B: %+v, %v", acct, err)
	}
	laptop := sessionProc(t, rb.opts, &client.Credentials{AccountID: bob.AccountID, DeviceID: 2, AuthKey: lreg.AuthKey}, 64)
	if err := phone.RevokeDevice(testCtx(t), 2); err != nil {
		t.Fatal(err)
	}
	select {
	case <-laptop.Done():
		if !laptop.Revoked() {
			t.Fatalf("the laptop's connection closed, but not as revoked: %v", laptop.Err())
		}
	case <-time.After(patience):
		t.Fatal("the laptop stayed connected to relay B after its revoke through relay A")
	}

	// Relay B dies without a word: relay A pushes Bob again once B's
	// heartbeat is older than the expiry.
	if err := rb.kill(t, syscall.SIGKILL); err == nil {
		t.Fatal("relay B exited cleanly after SIGKILL")
	}
	sends := 0
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	for {
		if _, err := ac.Send(testCtx(t), textTo(bob, msgID(), "are you there")); err != nil {
			t.Fatal(err)
		}
		sends++
		req, err := a.NextWithin(200 * time.Millisecond)
		if err == nil && req.Token == bobTok {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no push for Bob within %v after his relay died (%d sends)", patience, sends)
		}
	}
	t.Logf("Bob was pushed again after %d sends once relay B died (presence expiry 1 s)", sends)
}
