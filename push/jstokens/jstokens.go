// Package jstokens keeps push tokens (sealed by push.Store, never in the
// clear) in a NATS JetStream key-value bucket, so that every relay of a
// cluster can push to a device whichever relay it gave its token to.
package jstokens

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pigeonhole/pigeonhole/push"
)

// Records are push.Records in a key-value bucket.
type Records struct{ kv jetstream.KeyValue }

// Open creates or updates the bucket (file storage, replicas as given).
func Open(ctx context.Context, nc *nats.Conn, bucket string, replicas int) (*Records, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jstokens: %w", err)
	}
	kv, err := openBucket(ctx, js, jetstream.KeyValueConfig{
		Bucket: bucket, History: 1, Storage: jetstream.FileStorage, Replicas: max(replicas, 1),
	})
	if err != nil {
		return nil, err
	}
	return &Records{kv: kv}, nil
}

// The store's keys are binary; the bucket's must be tokens.
func name(key []byte) string { return "t." + hex.EncodeToString(key) }

// Get returns a record and its revision (0: none).
func (r *Records) Get(ctx context.Context, key []byte) ([]byte, uint64, error) {
	var e jetstream.KeyValueEntry
	err := again(ctx, func() (err error) {
		e, err = r.kv.Get(ctx, name(key))
		return err
	})
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	return e.Value(), e.Revision(), nil
}

// Put stores a record.
func (r *Records) Put(ctx context.Context, key, val []byte) error {
	return again(ctx, func() error {
		_, err := r.kv.Put(ctx, name(key), val)
		return err
	})
}

// Create stores a record only if there is none (or it was deleted), and
// reports whether it stored.
func (r *Records) Create(ctx context.Context, key, val []byte) (bool, error) {
	err := again(ctx, func() error {
		_, err := r.kv.Create(ctx, name(key), val)
		return err
	})
	if errors.Is(err, jetstream.ErrKeyExists) {
		return false, nil
	}
	return err == nil, err
}

// Delete removes a record (rev 0), or only the revision given.
func (r *Records) Delete(ctx context.Context, key []byte, rev uint64) (bool, error) {
	var opts []jetstream.KVDeleteOpt
	if rev != 0 {
		opts = append(opts, jetstream.LastRevision(rev))
	}
	err := again(ctx, func() error { return r.kv.Purge(ctx, name(key), opts...) })
	var apiErr *jetstream.APIError
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return false, nil
	case rev != 0 && (errors.Is(err, jetstream.ErrKeyExists) || errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)):
		return false, nil // set again meanwhile
	}
	return false, err
}

var _ push.Records = (*Records)(nil)
