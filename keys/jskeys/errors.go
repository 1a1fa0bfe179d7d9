package jskeys

import "errors"

// Errors of the JetStream key directory, beside package keys' own.
// Callers match them with errors.Is.
var (
	// ErrBadRecord means a record in the bucket does not carry a valid
	// MAC under the cluster key: it was written by someone without the
	// key (an attacker with access to NATS, or a relay with another
	// key) and is not trusted.
	ErrBadRecord = errors.New("jskeys: record fails its cluster-key check")
	// ErrNoClusterKey means Open was given no cluster key.
	ErrNoClusterKey = errors.New("jskeys: no cluster key")
)
