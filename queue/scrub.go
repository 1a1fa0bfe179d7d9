package queue

import (
	"context"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// What an acked message leaves in the data directory, and how Scrub
// removes it. An ack deletes the message's key, but Pebble keeps the
// deleted value in three places until later: the write-ahead log (WAL)
// that recorded the append, the memtable, and every sstable the value
// was flushed or compacted into. A WAL whose memtable is flushed is
// obsolete, and Pebble by default recycles it (renames it and writes the
// next log over it from the start, leaving old bytes past the new end);
// an sstable keeps a deleted value until a compaction brings the delete
// and the value together at the bottom level. Scrub flushes, compacts,
// and waits until the obsolete files are deleted; PebbleOptions makes
// Pebble delete obsolete WALs instead of recycling them.

// PebbleOptions sets what the queues need of the database's options:
// obsolete WAL files are deleted, never recycled, so that Scrub leaves no
// acked ciphertext in an old log. Call it before pebble.Open.
func PebbleOptions(o *pebble.Options) {
	o.Cleaner = deleteCleaner{}
}

// deleteCleaner deletes obsolete files with Pebble's DeleteCleaner, and
// carries Pebble's "needs file contents" mark (an unexported method, got
// from ArchiveCleaner one embedding deeper, so that its Clean is shadowed
// by DeleteCleaner's): that mark is the one setting that turns WAL
// recycling off.
type deleteCleaner struct {
	pebble.DeleteCleaner
	contentsMark
}

// contentsMark holds the ArchiveCleaner whose mark deleteCleaner gets.
type contentsMark struct{ pebble.ArchiveCleaner }

func (deleteCleaner) String() string { return "delete (no WAL recycling)" }

// dedupHashSize is the size of the stored form of a dedup key.
const dedupHashSize = 16

// hashDedup returns the form in which a dedup key is stored: a truncated
// SHA-256, so that the database holds neither the sender nor the client
// message id that the relay builds the key from.
func hashDedup(key []byte) []byte {
	h := sha256.Sum256(key)
	return h[:dedupHashSize]
}

// scrubSettle bounds how long Scrub waits for Pebble to delete the files
// a compaction made obsolete (an open iterator keeps a file until it
// closes).
const scrubSettle = time.Minute

// Scrub makes deleted data unrecoverable from the database's directory:
// it flushes the memtable (its WAL is then deleted), compacts the whole
// key space (the queues and everything sharing the database, such as the
// key directory's revoked devices and claimed prekeys) so that deletes
// drop the values they shadow, and waits until Pebble has deleted the
// obsolete WALs and sstables. It does nothing if nothing was written since
// the last Scrub. Run calls it every Config.ScrubInterval; a test calls it
// to get there at once.
func (s *Store) Scrub(ctx context.Context) error {
	s.scrubMu.Lock()
	defer s.scrubMu.Unlock()
	written := s.db.Metrics().WAL.BytesIn
	if s.scrubbed && written == s.scrubbedAt {
		return nil
	}
	if err := s.db.Flush(); err != nil {
		return fmt.Errorf("queue: scrub: flush: %w", err)
	}
	if err := s.db.Compact(ctx, []byte{0}, []byte{0xff}, false); err != nil {
		return fmt.Errorf("queue: scrub: compact: %w", err)
	}
	if err := s.settleObsolete(ctx); err != nil {
		return err
	}
	s.scrubbed, s.scrubbedAt = true, written
	return nil
}

// settleObsolete waits until Pebble has deleted every obsolete sstable,
// or scrubSettle has passed. Obsolete WALs are deleted with them, unless
// the database recycles them, which is an error.
func (s *Store) settleObsolete(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, scrubSettle)
	defer cancel()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		m := s.db.Metrics()
		if m.WAL.ObsoleteFiles > 0 {
			return fmt.Errorf("queue: scrub: %d obsolete WALs are kept for recycling, with old messages in them: open the database with queue.PebbleOptions", m.WAL.ObsoleteFiles)
		}
		left := m.Table.ObsoleteCount + m.Table.ZombieCount
		if left == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("queue: scrub: %d obsolete files not yet deleted: %w", left, ctx.Err())
		case <-t.C:
		}
	}
}
