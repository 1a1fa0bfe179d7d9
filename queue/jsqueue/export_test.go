package jsqueue

import "github.com/pigeonhole/pigeonhole/queue"

// Announced is announced, for tests.
func (s *Store) Announced(a queue.Address) uint64 {
	_, seq := s.announced(a)
	return seq
}
