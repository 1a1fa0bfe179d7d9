package keys_test

import (
	"testing"

	"github.com/pigeonhole/pigeonhole/keys"
	"github.com/pigeonhole/pigeonhole/keys/keystest"
)

// TestAccess runs the unidentified-access tests every key directory
// passes (the JetStream store runs the same ones).
func TestAccess(t *testing.T) {
	keystest.RunAccess(t, func(t *testing.T) keystest.AccessDirectory { return openStore(t, keys.Config{}) })
}
