package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// readmeBlock returns the README's indented code block that starts with
// the line first, up to the line before the one starting with next,
// unindented.
func readmeBlock(t *testing.T, first, next string) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "    "+first)
	if i < 0 {
		t.Fatalf("README has no %q", first)
	}
	j := strings.Index(s[i:], "    "+next)
	if j < 0 {
		t.Fatalf("README has no %q after %q", next, first)
	}
	var out strings.Builder
	for _, l := range strings.Split(s[i:i+j], "\n") {
		out.WriteString(strings.TrimPrefix(l, "    ") + "\n")
	}
	return out.String()
}

// testPKI writes a CA, a server certificate for 127.0.0.1 (also used by
// the routes, so for client auth too) and a client certificate into dir,
// under the README's file names.
func testPKI(t *testing.T, dir string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test NATS CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	write := func(name, typ string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ca.crt", "CERTIFICATE", caDER)
	write("nats-ca.crt", "CERTIFICATE", caDER)
	leaf := func(serial int64, cn string, usage []x509.ExtKeyUsage, crt, key string) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: usage,
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		write(crt, "CERTIFICATE", der)
		write(key, "PRIVATE KEY", kder)
	}
	leaf(2, "nats", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, "server.crt", "server.key")
	leaf(3, "relay", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, "nats-client.crt", "nats-client.key")
}

// TestClusterREADMEConfig runs the README's cluster example as it is
// (ports and paths substituted): three NATS servers from its nats.conf,
// parsed by nats-server's own config parser, and a relay from its
// relay.conf. The relay connects and serves; a client without the
// relay's password, or without a client certificate, is refused; and the
// relay's user cannot delete the queue stream, make a stream of its own,
// or listen to every subject.
func TestClusterREADMEConfig(t *testing.T) {
	natsConf := readmeBlock(t, "# /etc/nats/nats.conf on n1", "# /etc/pigeonhole/relay.conf")
	relayConf := readmeBlock(t, "# /etc/pigeonhole/relay.conf", "# /etc/systemd/")
	dir := t.TempDir()
	testPKI(t, dir)
	const relayPassword = "readme-relay-password"
	key := make([]byte, 32)
	rand.Read(key)
	for name, b := range map[string][]byte{"nats-password": []byte(relayPassword + "\n"), "cluster.key": key} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const n = 3
	// Client ports, then route ports: the config names them, so they
	// come from freePort, and the servers start again on fresh ones if
	// another listener took one first.
	servers, _, ports := startNATSOnFreePorts(t, 2*n, func(ports []int) []*server.Options {
		client, route := ports[:n], ports[n:]
		var opts []*server.Options
		for i := range n {
			conf := natsConf
			for from, to := range map[string]string{
				"server_name: n1": fmt.Sprintf("server_name: n%d", i+1),
				"0.0.0.0:4222":    fmt.Sprintf("127.0.0.1:%d", client[i]),
				"0.0.0.0:6222":    fmt.Sprintf("127.0.0.1:%d", route[i]),
				"/etc/nats/":      dir + "/",
				"/var/lib/nats":   t.TempDir(),
				"<bcrypt hash of the relay password: nats server passwd>": relayPassword,
				"<bcrypt hash of the admin password>":                     "readme-admin-password",
			} {
				if !strings.Contains(conf, from) {
					t.Fatalf("the README's nats.conf has no %q", from)
				}
				conf = strings.ReplaceAll(conf, from, to)
			}
			for j := range n {
				conf = strings.ReplaceAll(conf, fmt.Sprintf("n%d:6222", j+1), fmt.Sprintf("127.0.0.1:%d", route[j]))
			}
			path := filepath.Join(t.TempDir(), "nats.conf")
			if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
				t.Fatal(err)
			}
			o, err := server.ProcessConfigFile(path)
			if err != nil {
				t.Fatalf("the README's nats.conf: %v", err)
			}
			o.NoLog, o.NoSigs = true, true
			opts = append(opts, o)
		}
		return opts
	})
	client := ports[:n]
	waitMetaLeader(t, servers)

	for j := range n {
		relayConf = strings.ReplaceAll(relayConf, fmt.Sprintf("n%d:4222", j+1), fmt.Sprintf("127.0.0.1:%d", client[j]))
	}
	relayConf = strings.ReplaceAll(relayConf, "/etc/pigeonhole/", dir+"/")
	confPath := filepath.Join(dir, "relay.conf")
	if err := os.WriteFile(confPath, []byte(relayConf), 0o600); err != nil {
		t.Fatal(err)
	}
	// The relay's own QUIC certificate, media and metrics are not this
	// test's: self-signed, off, off.
	p := startRelayProc(t, t.TempDir(), "-config", confPath, "-cert", "", "-key", "", "-media", "off", "-metrics", "")
	alice, bob := registerProc(t, p.opts), registerProc(t, p.opts)
	ac, bc := sessionProc(t, p.opts, alice, 0), sessionProc(t, p.opts, bob, 8)
	if _, err := ac.Send(testCtx(t), textTo(bob, msgID(), "through the README's cluster")); err != nil {
		t.Fatal(err)
	}
	env := nextEnv(t, bc, false)
	if string(env.Content) != "through the README's cluster" {
		t.Fatalf("bob got %q", env.Content)
	}
	if err := bc.Ack(env.Seq); err != nil {
		t.Fatal(err)
	}
	if _, err := ac.FetchKeys(testCtx(t), bob.AccountID); err != nil {
		t.Fatalf("fetch keys: %v", err)
	}

	urls := fmt.Sprintf("tls://127.0.0.1:%d", client[0])
	tlsOpts := []nats.Option{nats.RootCAs(filepath.Join(dir, "ca.crt")),
		nats.ClientCert(filepath.Join(dir, "nats-client.crt"), filepath.Join(dir, "nats-client.key")), nats.MaxReconnects(0)}
	if nc, err := nats.Connect(urls, tlsOpts...); err == nil {
		nc.Close()
		t.Error("a client with a certificate but no user got in")
	}
	if nc, err := nats.Connect(urls, append(tlsOpts, nats.UserInfo("relay", "guess"))...); err == nil {
		nc.Close()
		t.Error("a client with a wrong password got in")
	}
	if nc, err := nats.Connect(urls, nats.RootCAs(filepath.Join(dir, "ca.crt")), nats.UserInfo("relay", relayPassword), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Error("the relay's user without a client certificate got in")
	}
	if nc, err := nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", client[0]), nats.UserInfo("relay", relayPassword), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Error("a client without TLS got in")
	}

	// The relay's credentials, outside their permissions.
	violations := make(chan error, 16)
	nc, err := nats.Connect(urls, append(tlsOpts, nats.UserInfo("relay", relayPassword),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case violations <- err:
			default:
			}
		}))...)
	if err != nil {
		t.Fatalf("the relay's credentials: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// denied runs a request that the server must refuse with a
	// permissions violation naming subj (sent to the connection, not as
	// a reply: the request is then given up).
	denied := func(what, subj string, fn func(context.Context) error) {
		t.Helper()
		ctx, cancel := context.WithCancel(testCtx(t))
		defer cancel()
		seen := make(chan bool, 1)
		go func() {
			for {
				select {
				case err := <-violations:
					if strings.Contains(strings.ToLower(err.Error()), "permissions violation") && strings.Contains(err.Error(), subj) {
						seen <- true
						cancel()
						return
					}
				case <-ctx.Done():
					seen <- false
					return
				}
			}
		}()
		err := fn(ctx)
		cancel()
		if err == nil || !<-seen {
			t.Errorf("the relay's user could %s (%v)", what, err)
		}
	}
	denied("delete the queue stream", "$JS.API.STREAM.DELETE.PIGEONHOLE_QUEUES", func(ctx context.Context) error {
		return js.DeleteStream(ctx, "PIGEONHOLE_QUEUES")
	})
	denied("make a stream of its own", "$JS.API.STREAM.CREATE.EXFIL", func(ctx context.Context) error {
		_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EXFIL", Subjects: []string{"exfil.>"}})
		return err
	})
	denied("listen to every subject", `">"`, func(ctx context.Context) error {
		if _, err := nc.SubscribeSync(">"); err != nil {
			return nil
		}
		if err := nc.FlushWithContext(ctx); err != nil {
			return err
		}
		<-ctx.Done() // the violation arrives after the flush
		return ctx.Err()
	})
	if _, err := js.Stream(testCtx(t), "PIGEONHOLE_QUEUES"); err != nil {
		t.Errorf("the queue stream: %v", err)
	}
}
