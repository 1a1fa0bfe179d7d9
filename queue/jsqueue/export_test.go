package jsqueue

import "github.com/pigeonhole/pigeonhole/queue"

// Announced is announced, for tests.
func (s *Store) Announced(a queue.Address) uint64 { return s.announced(a) }
