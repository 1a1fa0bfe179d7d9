package jskeys

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// openBucket creates the bucket, or binds to the one there without
// changing it, and turns off direct gets on it. A direct get may be
// answered by a replica that has not applied the newest write yet; this
// directory must read its own writes (a compare-and-set retried on a
// stale record spins, and a revoke must be seen at once), so every read
// goes to the stream's leader.
func openBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	_, err := js.CreateKeyValue(ctx, cfg)
	if err != nil && !errors.Is(err, jetstream.ErrBucketExists) {
		return nil, fmt.Errorf("jskeys: bucket %s: %w", cfg.Bucket, err)
	}
	st, err := js.Stream(ctx, "KV_"+cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("jskeys: bucket %s: %w", cfg.Bucket, err)
	}
	if sc := st.CachedInfo().Config; sc.AllowDirect {
		sc.AllowDirect = false
		if _, err := js.UpdateStream(ctx, sc); err != nil {
			return nil, fmt.Errorf("jskeys: bucket %s: leader reads: %w", cfg.Bucket, err)
		}
	}
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("jskeys: bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}
