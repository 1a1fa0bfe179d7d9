package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/pigeonhole/pigeonhole/relay/client"
)

// natsCluster is n JetStream servers on 127.0.0.1, routed to each other,
// running in the test process. Clients must log in as testNATSUser; the
// relays share one cluster key.
type natsCluster struct {
	servers []*server.Server
	opts    []*server.Options
	secrets string // directory with the password and cluster key files
}

// The NATS user of the test relays and its password.
const (
	testNATSUser     = "relay"
	testNATSPassword = "relay-s3cret-password"
)

// newSecrets writes the relays' NATS password file and cluster key (hex)
// into a new directory and returns it.
func newSecrets(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	key := make([]byte, 32)
	rand.Read(key)
	for name, b := range map[string][]byte{
		"nats-password": []byte(testNATSPassword + "\n"),
		"cluster.key":   []byte(hex.EncodeToString(key) + "\n"),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// storeFlags are the flags that put a relay on this NATS cluster:
// -store, its credentials and the cluster key. Callers add the rest.
func (c *natsCluster) storeFlags() []string {
	return []string{"-store", c.urls(), "-nats-user", testNATSUser,
		"-nats-password-file", filepath.Join(c.secrets, "nats-password"),
		"-cluster-key-file", filepath.Join(c.secrets, "cluster.key")}
}

// connect connects to the cluster as the relays' user does (for tests
// that look into NATS or act as an attacker who has its credentials).
func (c *natsCluster) connect(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(c.urls(), nats.UserInfo(testNATSUser, testNATSPassword))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// testUsers is the servers' one user.
func testUsers() []*server.User {
	return []*server.User{{Username: testNATSUser, Password: testNATSPassword}}
}

// startNATS runs one JetStream server (no cluster) with the test user.
func startNATS(t testing.TB) *natsCluster {
	t.Helper()
	o := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true, Users: testUsers()}
	servers, err := startNATSServers(t, []*server.Options{o})
	if err != nil {
		t.Fatal(err)
	}
	return &natsCluster{servers: servers, opts: []*server.Options{o}, secrets: newSecrets(t)}
}

// startNATSCluster runs n JetStream servers routed to each other. Their
// route ports come from freePort: every server's routes must be
// configured before it starts, as nats-server does not enable clustered
// JetStream (and so never opens its route listener) on a server without
// configured routes, so the first server cannot wait for the others to
// bind their own ports.
func startNATSCluster(t testing.TB, n int) *natsCluster {
	t.Helper()
	c := &natsCluster{secrets: newSecrets(t)}
	c.servers, c.opts, _ = startNATSOnFreePorts(t, n, func(ports []int) []*server.Options {
		routes := make([]*url.URL, n)
		for i, p := range ports {
			routes[i] = &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", p)}
		}
		var opts []*server.Options
		for i, p := range ports {
			opts = append(opts, &server.Options{
				ServerName: fmt.Sprintf("nats-%d", i), Host: "127.0.0.1", Port: -1,
				JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
				Cluster: server.ClusterOpts{Name: "pigeonhole-test", Host: "127.0.0.1", Port: p},
				Routes:  routes, Users: testUsers(),
			})
		}
		return opts
	})
	waitMetaLeader(t, c.servers)
	return c
}

// waitMetaLeader waits until the servers have a JetStream meta leader
// that every one of them follows.
func waitMetaLeader(t testing.TB, servers []*server.Server) {
	t.Helper()
	for _, ns := range servers {
		if !ns.ReadyForConnections(patience) {
			t.Fatal("nats server not ready")
		}
	}
	deadline := time.Now().Add(patience)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		leader, current := false, true
		for _, ns := range servers {
			leader = leader || ns.JetStreamIsLeader()
			current = current && ns.JetStreamIsCurrent()
		}
		if leader && current {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no JetStream meta leader in %v", patience)
		}
		<-tick.C
	}
}

// urls is the -store value for the cluster.
func (c *natsCluster) urls() string {
	var us []string
	for _, ns := range c.servers {
		us = append(us, ns.ClientURL())
	}
	return strings.Join(us, ",")
}

func msgID() []byte {
	id := make([]byte, 16)
	rand.Read(id)
	return id
}

func textTo(to *client.Credentials, id []byte, body string) *client.Message {
	return &client.Message{Recipient: to.AccountID, ClientMessageID: id,
		Devices: []client.DeviceMessage{{DeviceID: 1, Type: 2, Content: []byte(body)}}}
}

// TestClusterAcrossRelays runs two relay processes on one three-node
// JetStream cluster (R3). Alice is on relay A, Bob on relay B:
//   - Bob's session on B receives what Alice sends through A, without
//     polling (the wake-up crosses through NATS);
//   - a send retried through the other relay lands once;
//   - one-time prekeys fetched concurrently through both relays are each
//     handed out once.
func TestClusterAcrossRelays(t *testing.T) {
	nc := startNATSCluster(t, 3)
	store := append(nc.storeFlags(), "-nats-replicas", "3", "-media", "off")
	a := startRelayProc(t, t.TempDir(), store...)
	b := startRelayProc(t, t.TempDir(), store...)
	alice := registerProc(t, a.opts)
	bob := registerProc(t, b.opts)
	ac := sessionProc(t, a.opts, alice, 0)
	bc := sessionProc(t, b.opts, bob, 64)

	// Through A to a session on B.
	const n = 50
	for i := range n {
		if _, err := ac.Send(testCtx(t), textTo(bob, msgID(), fmt.Sprint(i))); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		env := nextEnv(t, bc, false)
		if string(env.Content) != fmt.Sprint(i) {
			t.Fatalf("bob got %q, want %d", env.Content, i)
		}
		if err := bc.Ack(env.Seq); err != nil {
			t.Fatal(err)
		}
	}

	// The same client message id through A, then through B.
	id := msgID()
	first, err := ac.Send(testCtx(t), textTo(bob, id, "once"))
	if err != nil || first.Duplicate {
		t.Fatalf("first send: %+v, %v", first, err)
	}
	ac2 := sessionProc(t, b.opts, alice, 0)
	again, err := ac2.Send(testCtx(t), textTo(bob, id, "once"))
	if err != nil || !again.Duplicate {
		t.Fatalf("the retry through relay B: %+v, %v; want a duplicate", again, err)
	}
	env := nextEnv(t, bc, false)
	if string(env.Content) != "once" {
		t.Fatalf("bob got %q", env.Content)
	}
	if err := bc.Ack(env.Seq); err != nil {
		t.Fatal(err)
	}

	// Carol has 40 one-time prekeys; 25 fetches through each relay, all
	// at once, may hand out each at most once (and 40 in all).
	carol, _ := registerIK(t, a.opts, 40)
	var (
		mu      sync.Mutex
		claimed []uint32
		none    int
		wg      sync.WaitGroup
	)
	for _, c := range []*client.Conn{ac, ac2} {
		for range 25 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				k, err := c.FetchKeys(testCtx(t), carol.AccountID)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				for _, d := range k.Devices {
					if d.PreKey == nil {
						none++
					} else {
						claimed = append(claimed, d.PreKey.ID)
					}
				}
			}()
		}
	}
	wg.Wait()
	slices.Sort(claimed)
	if len(slices.Compact(slices.Clone(claimed))) != len(claimed) || len(claimed) != 40 || none != 10 {
		t.Fatalf("50 concurrent fetches through two relays handed out %d prekeys (%d distinct), %d without: %v",
			len(claimed), len(slices.Compact(slices.Clone(claimed))), none, claimed)
	}
	t.Logf("sent %d through relay A, delivered %d on relay B; a retry through B was a duplicate; 40 prekeys claimed once by 50 fetches", n, n)
}
