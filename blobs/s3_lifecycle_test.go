package blobs

import (
	"testing"
	"time"
)

func TestS3Lifecycle(t *testing.T) {
	s, cfg := newTestS3(t) // Lifetime 36h: 2 whole days
	ctx := t.Context()
	s3WantRule(t, s, 2, 1)

	// Another tool's rule survives, and rerunning NewS3 neither duplicates
	// nor rewrites ours. (A rewrite would move our rule last, so the rule
	// order tells; MinIO's update timestamp has only whole seconds.)
	lc, err := s.client.GetBucketLifecycle(ctx, cfg.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	other := expiryRule(7)
	other.ID, other.RuleFilter.Prefix = "someone-else", "tmp/"
	lc.Rules = append(lc.Rules, other)
	if err := s.client.SetBucketLifecycle(ctx, cfg.Bucket, lc); err != nil {
		t.Fatal(err)
	}
	if _, err := NewS3(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	lc, err = s.client.GetBucketLifecycle(ctx, cfg.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if len(lc.Rules) != 2 || lc.Rules[0].ID != LifecycleRuleID {
		var ids []string
		for _, r := range lc.Rules {
			ids = append(ids, r.ID)
		}
		t.Errorf("after NewS3 with an unchanged lifetime, rules %q; want %s first, untouched", ids, LifecycleRuleID)
	}
	s3WantRule(t, s, 2, 2)

	cfg.Lifetime = 10 * 24 * time.Hour
	if _, err := NewS3(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	s3WantRule(t, s, 10, 2)
}

// wantRule checks that the bucket has rules rules in all, one of them ours,
// expiring "b/" after days days.
func s3WantRule(t *testing.T, s *S3, days, rules int) {
	t.Helper()
	lc, err := s.client.GetBucketLifecycle(t.Context(), s.bucket)
	if err != nil {
		t.Fatal(err)
	}
	if len(lc.Rules) != rules {
		t.Errorf("%d lifecycle rules; want %d: %+v", len(lc.Rules), rules, lc.Rules)
	}
	n := 0
	for _, r := range lc.Rules {
		if r.ID != LifecycleRuleID {
			continue
		}
		n++
		if r.Status != "Enabled" || r.RuleFilter.Prefix != "b/" || int(r.Expiration.Days) != days {
			t.Errorf("rule %s: status %s, prefix %q, %d days; want Enabled, b/, %d days",
				r.ID, r.Status, r.RuleFilter.Prefix, r.Expiration.Days, days)
		}
	}
	if n != 1 {
		t.Errorf("%d rules named %s; want 1", n, LifecycleRuleID)
	}
}
