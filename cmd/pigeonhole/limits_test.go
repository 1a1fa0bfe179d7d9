package main

import (
	"testing"
	"time"

	"github.com/pigeonhole/pigeonhole/relay"
)

// TestPreKeyClaimLimitOnJetStream: the per-device claim limit of finding
// 4 (issue 16) holds with the JetStream key store too. A relay process on
// NATS with -prekey-claim-burst 5: fresh accounts fetching a victim's
// keys 15 times get 5 one-time prekeys, then bundles with the signed
// prekey only, and the victim keeps the rest.
func TestPreKeyClaimLimitOnJetStream(t *testing.T) {
	ns := startNATS(t)
	p := startRelayProc(t, t.TempDir(), append(ns.storeFlags(), "-nats-replicas", "1", "-media", "off", "-prekey-claim-burst", "5", "-prekey-claim-every", "1000h")...)
	victim, _ := registerIK(t, p.opts, 20)
	with, without := 0, 0
	for range 3 {
		c := sessionProc(t, p.opts, registerProc(t, p.opts), 0)
		for range 5 {
			k, err := c.FetchKeys(testCtx(t), victim.AccountID)
			if err != nil {
				t.Fatal(err)
			}
			d := k.Devices[0]
			if len(d.SignedPreKey.PublicKey) == 0 {
				t.Fatal("a bundle without a signed prekey")
			}
			if d.PreKey != nil {
				with++
			} else {
				without++
			}
		}
	}
	if with != 5 || without != 10 {
		t.Fatalf("%d bundles with a one-time prekey, %d without; want 5 and 10", with, without)
	}
	vc := sessionProc(t, p.opts, victim, 0)
	if n, err := vc.PreKeyStatus(testCtx(t)); err != nil || n != 15 {
		t.Fatalf("victim holds %d prekeys (%v), want 15", n, err)
	}
}

// TestLimitFlags: the stranger limits are operator settings, from flags
// or the environment, with the documented defaults.
func TestLimitFlags(t *testing.T) {
	var f serveFlags
	fs := serveFlagSet(&f)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	f.limits.apply(&f.cfg)
	c := f.cfg
	if c.IPv4PrefixBits != 32 || c.IPv6PrefixBits != 64 || c.MaxProvisioning != 10000 || c.MaxProvisioningPerSource != 10 ||
		c.NewAccountLimit != (relay.Limit{Burst: 100, Every: 600 * time.Millisecond}) ||
		c.ProvisioningLimit != (relay.Limit{Burst: 10, Every: 30 * time.Second}) ||
		c.PreKeyClaimLimit != (relay.Limit{Burst: 50, Every: time.Minute}) {
		t.Fatalf("defaults: %+v", c)
	}
	f = serveFlags{}
	fs = serveFlagSet(&f)
	t.Setenv("PIGEONHOLE_PREKEY_CLAIM_BURST", "7")
	if err := fs.Parse([]string{"-ipv4-prefix", "24", "-ipv6-prefix", "56", "-new-account-burst", "5", "-new-account-every", "1s",
		"-max-provisioning-per-source", "2", "-provisioning-burst", "3", "-prekey-claim-every", "2m"}); err != nil {
		t.Fatal(err)
	}
	if err := applyConfig(fs, ""); err != nil {
		t.Fatal(err)
	}
	f.limits.apply(&f.cfg)
	c = f.cfg
	if c.IPv4PrefixBits != 24 || c.IPv6PrefixBits != 56 || c.MaxProvisioningPerSource != 2 ||
		c.NewAccountLimit != (relay.Limit{Burst: 5, Every: time.Second}) ||
		c.ProvisioningLimit != (relay.Limit{Burst: 3, Every: 30 * time.Second}) ||
		c.PreKeyClaimLimit != (relay.Limit{Burst: 7, Every: 2 * time.Minute}) {
		t.Fatalf("set: %+v", c)
	}
}
