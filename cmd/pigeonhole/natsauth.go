package main

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/pigeonhole/pigeonhole/keys/jskeys"
)

// natsAuthFlags say how a relay proves itself to NATS and how it checks
// the NATS servers, and name the cluster key.
type natsAuthFlags struct {
	creds, nkey, user, passwordFile string
	tlsCert, tlsKey, ca             string
	insecure                        bool
	clusterKeyFile                  string
}

func (n *natsAuthFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&n.creds, "nats-creds", "", "with -store nats://..., a NATS credentials `file` (.creds: user JWT and NKey seed) to connect with")
	fs.StringVar(&n.nkey, "nats-nkey", "", "with -store nats://..., a `file` holding the NKey seed (SU...) of the NATS user to connect as")
	fs.StringVar(&n.user, "nats-user", "", "with -store nats://..., the NATS `user` to connect as, with -nats-password-file")
	fs.StringVar(&n.passwordFile, "nats-password-file", "", "with -nats-user, a `file` holding that user's NATS password (one line)")
	fs.StringVar(&n.tlsCert, "nats-tls-cert", "", "with -store nats://..., a TLS client certificate `file` (PEM) for NATS servers that verify clients, with -nats-tls-key")
	fs.StringVar(&n.tlsKey, "nats-tls-key", "", "the private key `file` (PEM) of -nats-tls-cert")
	fs.StringVar(&n.ca, "nats-ca", "", "with -store nats://..., a CA certificate `file` (PEM) the NATS servers' certificates must chain to; setting it (or -nats-tls-cert) requires TLS")
	fs.BoolVar(&n.insecure, "nats-insecure", false, "with -store nats://..., allow a NATS connection without credentials (anyone who can reach NATS then owns the cluster: only for a NATS reachable by nothing but the relays)")
	fs.StringVar(&n.clusterKeyFile, "cluster-key-file", "", "with -store nats://..., `file` with the cluster key every relay of the cluster shares: 32 random bytes, raw or as 64 hex digits (create it with: head -c 32 /dev/urandom > cluster.key); it authenticates the key directory's records and the relays' messages to each other, and is never sent to NATS")
}

// urlHasUserinfo reports whether a NATS URL in the comma-separated list
// carries a user, password or token.
func urlHasUserinfo(urls string) bool {
	for _, u := range strings.Split(urls, ",") {
		if p, err := url.Parse(strings.TrimSpace(u)); err == nil && p.User != nil {
			return true
		}
	}
	return false
}

// options returns the nats.go options for the credentials and TLS
// settings, and whether the connection authenticates. Errors name the
// flags, never a secret.
func (n *natsAuthFlags) options(urls string) ([]nats.Option, bool, error) {
	var opts []nats.Option
	methods := 0
	for _, set := range []bool{n.creds != "", n.nkey != "", n.user != "" || n.passwordFile != ""} {
		if set {
			methods++
		}
	}
	if methods > 1 {
		return nil, false, errors.New("give one of -nats-creds, -nats-nkey and -nats-user, not several")
	}
	switch {
	case n.creds != "":
		if _, err := os.Stat(n.creds); err != nil {
			return nil, false, fmt.Errorf("-nats-creds: %w", err)
		}
		opts = append(opts, nats.UserCredentials(n.creds))
	case n.nkey != "":
		o, err := nats.NkeyOptionFromSeed(n.nkey)
		if err != nil {
			return nil, false, fmt.Errorf("-nats-nkey %s: %w", n.nkey, err)
		}
		opts = append(opts, o)
	case n.user != "" || n.passwordFile != "":
		if n.user == "" || n.passwordFile == "" {
			return nil, false, errors.New("-nats-user and -nats-password-file go together")
		}
		b, err := os.ReadFile(n.passwordFile)
		if err != nil {
			return nil, false, fmt.Errorf("read -nats-password-file: %w", err)
		}
		pw := strings.TrimRight(string(b), "\r\n")
		if pw == "" {
			return nil, false, fmt.Errorf("-nats-password-file %s is empty", n.passwordFile)
		}
		opts = append(opts, nats.UserInfo(n.user, pw))
	}
	authed := methods > 0 || urlHasUserinfo(urls)
	if !authed && !n.insecure {
		return nil, false, errors.New("with -store nats://..., the relay needs NATS credentials: add -nats-creds FILE, -nats-nkey FILE, or -nats-user NAME with -nats-password-file FILE (or -nats-insecure, for a NATS server that nothing but the relays can reach)")
	}
	if (n.tlsCert == "") != (n.tlsKey == "") {
		return nil, false, errors.New("-nats-tls-cert and -nats-tls-key go together")
	}
	if n.tlsCert != "" {
		opts = append(opts, nats.ClientCert(n.tlsCert, n.tlsKey))
	}
	if n.ca != "" {
		opts = append(opts, nats.RootCAs(n.ca))
	}
	return opts, authed, nil
}

// clusterKeyHint tells how to make a cluster key.
const clusterKeyHint = "create one with: head -c 32 /dev/urandom > cluster.key, copy it to every relay, and give it with -cluster-key-file"

// loadClusterKey reads -cluster-key-file: exactly 32 bytes are the key;
// otherwise the file must hold 64 hex digits (and optional surrounding
// white space).
func (n *natsAuthFlags) loadClusterKey() ([]byte, error) {
	if n.clusterKeyFile == "" {
		return nil, errors.New("with -store nats://..., every relay needs the same cluster key: " + clusterKeyHint)
	}
	b, err := os.ReadFile(n.clusterKeyFile)
	if err != nil {
		return nil, fmt.Errorf("read -cluster-key-file: %w", err)
	}
	if len(b) == jskeys.ClusterKeySize {
		return b, nil
	}
	t := bytes.TrimSpace(b)
	if len(t) == 2*jskeys.ClusterKeySize {
		k := make([]byte, jskeys.ClusterKeySize)
		if _, err := hex.Decode(k, t); err == nil {
			return k, nil
		}
	}
	return nil, fmt.Errorf("-cluster-key-file %s holds %d bytes, want 32 random bytes (or 64 hex digits): %s", n.clusterKeyFile, len(b), clusterKeyHint)
}
