package main

import (
	"flag"
	"time"

	"github.com/pigeonhole/pigeonhole/relay"
)

// limitFlags are pigeonhole serve's settings for the limits on what
// strangers can take: source prefixes, the relay-wide new-account
// ceiling, provisioning slots and one-time prekey claims (README,
// "Security").
type limitFlags struct {
	accountBurst int
	accountEvery time.Duration
	provBurst    int
	provEvery    time.Duration
	claimBurst   int
	claimEvery   time.Duration
}

func (l *limitFlags) register(fs *flag.FlagSet, cfg *relay.Config) {
	fs.IntVar(&cfg.IPv4PrefixBits, "ipv4-prefix", 32, "per-source limits count IPv4 addresses in one block of this prefix `length` (1-32) as one source")
	fs.IntVar(&cfg.IPv6PrefixBits, "ipv6-prefix", 64, "per-source limits count IPv6 addresses in one block of this prefix `length` (1-128) as one source")
	fs.IntVar(&l.accountBurst, "new-account-burst", 100, "new accounts allowed at once on the whole relay, from all sources")
	fs.DurationVar(&l.accountEvery, "new-account-every", 600*time.Millisecond, "then one new account on the whole relay per this `duration`")
	fs.IntVar(&cfg.MaxProvisioning, "max-provisioning", 10000, "provisioning streams (new devices waiting to be linked) open at once on the relay")
	fs.IntVar(&cfg.MaxProvisioningPerSource, "max-provisioning-per-source", 10, "provisioning streams open at once from one source prefix")
	fs.IntVar(&l.provBurst, "provisioning-burst", 10, "provisioning streams opened at once per source prefix")
	fs.DurationVar(&l.provEvery, "provisioning-every", 30*time.Second, "then one provisioning stream per source prefix per this `duration`")
	fs.IntVar(&l.claimBurst, "prekey-claim-burst", 50, "one-time prekeys other accounts may claim at once from one device")
	fs.DurationVar(&l.claimEvery, "prekey-claim-every", time.Minute, "then one claim per device per this `duration`; past the limit bundles come without a one-time prekey")
}

// apply puts the flags that make up a relay.Limit into cfg.
func (l *limitFlags) apply(cfg *relay.Config) {
	cfg.NewAccountLimit = relay.Limit{Burst: l.accountBurst, Every: l.accountEvery}
	cfg.ProvisioningLimit = relay.Limit{Burst: l.provBurst, Every: l.provEvery}
	cfg.PreKeyClaimLimit = relay.Limit{Burst: l.claimBurst, Every: l.claimEvery}
}
