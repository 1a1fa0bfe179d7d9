package relay_test

import (
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/quic-go/quic-go"

	"github.com/pigeonhole/pigeonhole/relay"
	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/relaytest"
	"github.com/pigeonhole/pigeonhole/spec"
)

// never is a refill period no test lives to see: a bucket's burst is all
// it gives.
const never = 1 << 40

// dialFrom connects to the relay from a UDP socket bound to ip, one of
// the loopback addresses (on Linux all of 127.0.0.0/8 is loopback), so a
// test can come from many source addresses as an attacker would.
func (r *testRelay) dialFrom(t testing.TB, ip string) *client.Conn {
	t.Helper()
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatalf("bind %s: %v", ip, err)
	}
	tr := &quic.Transport{Conn: udp}
	opts := r.opts
	opts.Transport = tr
	c, err := client.Dial(ctxT(t), &opts)
	if err != nil {
		tr.Close()
		udp.Close()
		t.Fatalf("dial from %s: %v", ip, err)
	}
	t.Cleanup(func() {
		c.Close()
		tr.Close()
		udp.Close()
	})
	if got := c.LocalAddr(); got == "" {
		t.Fatal("no local address")
	}
	return c
}

// registerFrom registers a fresh account from ip and returns it, or the
// relay's refusal.
func (r *testRelay) registerFrom(t testing.TB, ip string) (*device, error) {
	t.Helper()
	reg, ik := newRegistration(t, 0)
	c := r.dialFrom(t, ip)
	defer c.Close()
	acct, err := c.Register(ctxT(t), reg)
	if err != nil {
		return nil, err
	}
	return &device{Account: *acct, auth: reg.AuthKey, identity: ik}, nil
}

// wantRateLimited checks err is RATE_LIMITED with a retry_after_ms.
func wantRateLimited(t *testing.T, err error) {
	t.Helper()
	if e := wantCode(t, err, spec.CodeRateLimited); e.RetryAfterMillis == 0 {
		t.Fatalf("RATE_LIMITED without retry_after_ms: %s", e.Message)
	}
}

// limitedMetric is pigeonhole_limited_total for one limit.
func (r *testRelay) limitedMetric(t *testing.T, limit string) float64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "pigeonhole_limited_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "limit" && l.GetValue() == limit {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestRegisterLimitPerPrefix is finding 3 of issue 16: registrations from
// many addresses of one network share the network's bucket. With a /24
// prefix, 30 registrations from ten addresses of 127.0.0.0/24 get the
// burst of 10 between them (the relay used to give each address its own
// 10, so all 30 passed), while an address in another /24 has its own.
func TestRegisterLimitPerPrefix(t *testing.T) {
	cfg := testConfig()
	cfg.RegisterLimit = relay.Limit{Burst: 10, Every: never}
	cfg.IPv4PrefixBits = 24
	r := startRelay(t, cfg)
	ok, limited := 0, 0
	for i := range 30 {
		ip := fmt.Sprintf("127.0.0.%d", 2+i%10)
		_, err := r.registerFrom(t, ip)
		if err == nil {
			ok++
			continue
		}
		wantRateLimited(t, err)
		limited++
	}
	if ok != 10 || limited != 20 {
		t.Fatalf("from ten addresses of one /24: %d registered, %d refused; want 10 and 20", ok, limited)
	}
	if _, err := r.registerFrom(t, "127.0.1.2"); err != nil {
		t.Fatalf("another /24 shares the first one's bucket: %v", err)
	}
}

// TestRegisterLimitDefaultIPv4Prefix: with the default /32, two loopback
// addresses are two sources.
func TestRegisterLimitDefaultIPv4Prefix(t *testing.T) {
	cfg := testConfig()
	cfg.RegisterLimit = relay.Limit{Burst: 1, Every: never}
	r := startRelay(t, cfg)
	if _, err := r.registerFrom(t, "127.0.0.2"); err != nil {
		t.Fatal(err)
	}
	_, err := r.registerFrom(t, "127.0.0.2")
	wantRateLimited(t, err)
	if _, err := r.registerFrom(t, "127.0.0.3"); err != nil {
		t.Fatalf("127.0.0.3 shares 127.0.0.2's bucket under /32: %v", err)
	}
}

// TestNewAccountCeiling is the relay-wide half of finding 3: sources that
// are each within their own limit together get at most NewAccountLimit.
// Only accounts made count; a registration the ceiling refuses costs its
// source nothing (it can still link a device), and linking is not under
// the ceiling.
func TestNewAccountCeiling(t *testing.T) {
	cfg := testConfig()
	cfg.RegisterLimit = relay.Limit{Burst: 1, Every: never}
	cfg.NewAccountLimit = relay.Limit{Burst: 5, Every: never}
	r := startRelay(t, cfg)
	// A registration the key directory refuses makes no account and
	// takes nothing from the ceiling.
	bad, _ := newRegistration(t, 0)
	bad.IdentityKey = bad.IdentityKey[:10]
	_, err := r.dialFrom(t, "127.0.0.8").Register(ctxT(t), bad)
	wantCode(t, err, spec.CodeInvalidKey)
	var first *device
	for i := range 5 {
		d, err := r.registerFrom(t, fmt.Sprintf("127.0.0.%d", 2+i))
		if err != nil {
			t.Fatalf("registration %d of 5: %v", i+1, err)
		}
		if first == nil {
			first = d
		}
	}
	_, err = r.registerFrom(t, "127.0.0.7")
	wantRateLimited(t, err)
	if n := r.limitedMetric(t, "new_accounts"); n != 1 {
		t.Fatalf("pigeonhole_limited_total{limit=new_accounts} = %v, want 1", n)
	}
	// 127.0.0.7's one registration token is still there: it links a
	// device to the first account.
	pc := r.session(t, first, 0)
	code, _, err := pc.CreateLinkCode(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := relaytest.NewLinkedRegistration(first.identity, 0)
	if err != nil {
		t.Fatal(err)
	}
	nc := r.dialFrom(t, "127.0.0.7")
	if _, err := nc.LinkDevice(ctxT(t), first.AccountID, code, reg, nil); err != nil {
		t.Fatalf("link after the ceiling refused this source's registration: %v", err)
	}
}

// TestProvisioningSharePerPrefix is finding 7 of issue 16: one party
// holding provisioning streams from 30 addresses of its network gets its
// network's share, not the relay's slots, so a device on another network
// can still link; a share comes back when a stream closes.
func TestProvisioningSharePerPrefix(t *testing.T) {
	cfg := testConfig()
	cfg.MaxProvisioning = 20
	cfg.MaxProvisioningPerSource = 3
	cfg.IPv4PrefixBits = 24
	r := startRelay(t, cfg)
	var held []*client.Provisioning
	limited := 0
	for i := range 30 {
		p, err := r.dialFrom(t, fmt.Sprintf("127.0.0.%d", 2+i)).OpenProvisioning(ctxT(t))
		if err != nil {
			wantRateLimited(t, err)
			limited++
			continue
		}
		held = append(held, p)
	}
	if len(held) != 3 || limited != 27 {
		t.Fatalf("from 30 addresses of one /24: %d provisioning streams, %d refused; want 3 and 27", len(held), limited)
	}
	if n := r.limitedMetric(t, "provisioning_source"); n != 27 {
		t.Fatalf("pigeonhole_limited_total{limit=provisioning_source} = %v, want 27", n)
	}
	other, err := r.dialFrom(t, "127.0.1.2").OpenProvisioning(ctxT(t))
	if err != nil {
		t.Fatalf("a device on another network cannot link: %v", err)
	}
	defer other.Close()
	// Closing one gives the share back. The relay notices the close
	// asynchronously; wait for the slot on the relay's own answer.
	held[0].Close()
	ctx, again := ctxT(t), r.dialFrom(t, "127.0.0.40")
	for {
		p, err := again.OpenProvisioning(ctx)
		if err == nil {
			p.Close()
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the closed stream's share never came back: %v", err)
		}
		wantRateLimited(t, err)
	}
	for _, p := range held[1:] {
		p.Close()
	}
}

// TestPreKeyDrainingByFreshAccounts is finding 4 of issue 16: twelve
// fresh accounts fetching a victim's keys as fast as they can used to
// empty its one-time prekeys. Now a target device gives out at most
// PreKeyClaimLimit of them to other accounts; the rest of the bundles
// come with the signed prekey only, so senders are still served.
func TestPreKeyDrainingByFreshAccounts(t *testing.T) {
	cfg := testConfig()
	cfg.PreKeyClaimLimit = relay.Limit{Burst: 20, Every: never}
	r := startRelay(t, cfg)
	victim := r.register(t, 100)
	vc := r.session(t, victim, 0)
	for start := uint32(101); start < 300; start += 100 {
		reg, _ := newRegistration(t, 100)
		pks := reg.PreKeys
		for i := range pks {
			pks[i].ID = start + uint32(i)
		}
		if _, err := vc.UploadPreKeys(ctxT(t), pks); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := vc.PreKeyStatus(ctxT(t)); err != nil || n != 300 {
		t.Fatalf("victim holds %d prekeys (%v), want 300", n, err)
	}
	const attackers, each = 12, 30
	var (
		mu            sync.Mutex
		with, without int
		wg            sync.WaitGroup
	)
	for range attackers {
		ac := r.session(t, r.register(t, 0), 0)
		wg.Go(func() {
			for range each {
				ks, err := ac.FetchKeys(ctxT(t), victim.AccountID)
				if err != nil {
					t.Error(err)
					return
				}
				d := ks.Devices[0]
				if len(d.SignedPreKey.PublicKey) == 0 || len(d.SignedPreKey.Signature) == 0 {
					t.Error("a bundle without a signed prekey")
					return
				}
				mu.Lock()
				if d.PreKey != nil {
					with++
				} else {
					without++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if with != 20 || without != attackers*each-20 {
		t.Fatalf("%d bundles with a one-time prekey, %d without; want 20 and %d", with, without, attackers*each-20)
	}
	if n, err := vc.PreKeyStatus(ctxT(t)); err != nil || n != 280 {
		t.Fatalf("victim holds %d prekeys (%v) after the attack, want 280", n, err)
	}
	if n := r.limitedMetric(t, "prekey_claims"); n != attackers*each-20 {
		t.Fatalf("pigeonhole_limited_total{limit=prekey_claims} = %v, want %d", n, attackers*each-20)
	}
	// The account's own devices are not limited.
	ks, err := vc.FetchKeys(ctxT(t), victim.AccountID)
	if err != nil || ks.Devices[0].PreKey == nil {
		t.Fatalf("own fetch: %+v, %v", ks, err)
	}
}

// TestPreKeysLowUnderClaimLimit: claims within the limit still bring the
// low-prekey notice.
func TestPreKeysLowUnderClaimLimit(t *testing.T) {
	cfg := testConfig()
	cfg.PreKeyClaimLimit = relay.Limit{Burst: 3, Every: never}
	r := startRelay(t, cfg)
	alice, bob := r.register(t, 0), r.register(t, 11)
	bc := r.session(t, bob, 4)
	nextKind(t, bc, client.EventDrained)
	ac := r.session(t, alice, 0)
	for range 5 {
		if _, err := ac.FetchKeys(ctxT(t), bob.AccountID); err != nil {
			t.Fatal(err)
		}
	}
	if ev := nextKind(t, bc, client.EventPreKeysLow); ev.PreKeysRemaining != 9 {
		t.Fatalf("remaining %d, want 9", ev.PreKeysRemaining)
	}
	if n, err := bc.PreKeyStatus(ctxT(t)); err != nil || n != 8 {
		t.Fatalf("bob holds %d (%v), want 8: three claims of five", n, err)
	}
}
