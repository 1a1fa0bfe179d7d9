package queue_test

import (
	"testing"

	"github.com/pigeonhole/pigeonhole/queue"
	"github.com/pigeonhole/pigeonhole/queue/queuetest"
)

// TestBehaviour runs the tests every queue backend passes (the JetStream
// store runs the same ones).
func TestBehaviour(t *testing.T) {
	queuetest.Run(t, func(t *testing.T, l queuetest.Limits) queuetest.Queues {
		return openStore(t, queue.Config{MaxCount: l.MaxCount, SenderMaxCount: l.SenderMaxCount})
	})
}
