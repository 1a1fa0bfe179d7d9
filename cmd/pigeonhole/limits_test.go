package main

import (
	"testing"
	"time"

	"github.com/pigeonhole/pigeonhole/relay"
)

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
