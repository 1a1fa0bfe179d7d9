package jskeys_test

import (
	"testing"

	"github.com/pigeonhole/pigeonhole/keys"
	"github.com/pigeonhole/pigeonhole/keys/keystest"
)

// TestAccess runs the unidentified-access tests every key directory
// passes (the Pebble store runs the same ones).
func TestAccess(t *testing.T) {
	keystest.RunAccess(t, func(t *testing.T) keystest.AccessDirectory {
		return open(t, startNATS(t), keys.Config{})
	})
}
