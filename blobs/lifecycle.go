package blobs

import (
	"context"
	"fmt"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/lifecycle"
)

// LifecycleRuleID names the bucket lifecycle rule NewS3 manages. Rules with
// other IDs in the same bucket are left alone.
const LifecycleRuleID = "pigeonhole-blob-expiry"

// lifetimeDays converts a lifetime to whole days, rounding up.
func lifetimeDays(d time.Duration) int {
	const day = 24 * time.Hour
	return int((d + day - 1) / day)
}

// expiryRule is the rule that expires every blob after days days.
func expiryRule(days int) lifecycle.Rule {
	return lifecycle.Rule{
		ID:         LifecycleRuleID,
		Status:     "Enabled",
		RuleFilter: lifecycle.Filter{Prefix: s3KeyPrefix},
		Expiration: lifecycle.Expiration{Days: lifecycle.ExpirationDays(days)},
	}
}

// ensureLifecycle makes the bucket's lifecycle configuration hold exactly
// one rule named LifecycleRuleID, expiring objects under s3KeyPrefix after
// days days, keeping any other rules. It writes only if something changed.
func (s *S3) ensureLifecycle(ctx context.Context, days int) error {
	cfg, err := s.client.GetBucketLifecycle(ctx, s.bucket)
	switch {
	case err == nil:
	case minio.ToErrorResponse(err).Code == "NoSuchLifecycleConfiguration":
		cfg = lifecycle.NewConfiguration()
	default:
		return fmt.Errorf("reading: %w", err)
	}

	want := expiryRule(days)
	rules := make([]lifecycle.Rule, 0, len(cfg.Rules)+1)
	found, same := false, false
	for _, r := range cfg.Rules {
		if r.ID != LifecycleRuleID {
			rules = append(rules, r)
			continue
		}
		if !found {
			same = sameExpiry(r, want)
		} else {
			same = false // a duplicate to drop
		}
		found = true
	}
	if found && same {
		return nil
	}
	cfg.Rules = append(rules, want)
	if err := s.client.SetBucketLifecycle(ctx, s.bucket, cfg); err != nil {
		return fmt.Errorf("writing: %w", err)
	}
	return nil
}

// sameExpiry reports whether r already does what want does.
func sameExpiry(r, want lifecycle.Rule) bool {
	f := r.RuleFilter
	prefix := f.Prefix
	if prefix == "" {
		prefix = r.Prefix // the older, filterless form
	}
	return r.Status == want.Status &&
		prefix == s3KeyPrefix &&
		f.Tag.IsEmpty() && f.And.IsEmpty() &&
		f.ObjectSizeLessThan == 0 && f.ObjectSizeGreaterThan == 0 &&
		r.Expiration.Days == want.Expiration.Days &&
		r.Expiration.Date.IsZero()
}
