package jsqueue

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/pigeonhole/pigeonhole/queue"
)

// Store is the set of per-device queues on a JetStream stream. It is safe
// for concurrent use, and any number of Stores (one per relay) may share
// the stream.
type Store struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
	cfg    Config
	log    *slog.Logger

	out     outstandingSet // delivered here, not yet acked
	batches chan struct{}  // open atomic batches of this Store

	wakes   *nats.Subscription // phw.>
	mu      sync.Mutex
	watches map[queue.Address]map[*watcher]struct{}
	known   map[queue.Address]uint64 // newest seq announced to a watched device
}

// Open creates or updates the stream and returns the queues on it. The
// caller keeps ownership of nc.
func Open(ctx context.Context, nc *nats.Conn, cfg Config, log *slog.Logger) (*Store, error) {
	if nc == nil {
		return nil, errors.New("jsqueue: nil connection")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.setDefaults()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jsqueue: %w", err)
	}
	want := jetstream.StreamConfig{
		Name:                 cfg.Stream,
		Subjects:             []string{"phq.>", "phd.>"},
		Storage:              jetstream.FileStorage,
		Replicas:             cfg.Replicas,
		MaxAge:               cfg.Lifetime,
		MaxMsgsPerSubject:    int64(cfg.SenderMaxCount),
		Discard:              jetstream.DiscardNew,
		DiscardNewPerSubject: true,
		MaxMsgSize:           cfg.MaxMessageBytes,
		AllowDirect:          true,
		AllowAtomicPublish:   true,
		AllowMsgTTL:          true,
		Duplicates:           time.Minute, // ids are ours (phd.), not Nats-Msg-Id
	}
	st, err := openStream(ctx, js, want, log)
	if err != nil {
		return nil, err
	}
	s := &Store{nc: nc, js: js, stream: st, cfg: cfg, log: log, batches: make(chan struct{}, cfg.MaxBatchesInFlight), watches: make(map[queue.Address]map[*watcher]struct{}), known: make(map[queue.Address]uint64)}
	if err := s.subscribeWakes(); err != nil {
		return nil, fmt.Errorf("jsqueue: subscribe to wake-ups: %w", err)
	}
	return s, nil
}

// openStream creates the stream, or uses the one there. An existing
// stream is never updated: lowering its per-device limit or its maximum
// age would make JetStream drop queued messages at once, so a relay
// started with other settings (a typo, a test relay pointed at the
// cluster) must not change it. It says what differs; an operator changes
// the stream with the nats CLI.
func openStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig, log *slog.Logger) (jetstream.Stream, error) {
	st, err := js.CreateStream(ctx, want)
	if err == nil {
		return st, nil
	}
	if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return nil, fmt.Errorf("jsqueue: create stream %s: %w", want.Name, err)
	}
	st, err = js.Stream(ctx, want.Name)
	if err != nil {
		return nil, fmt.Errorf("jsqueue: stream %s: %w", want.Name, err)
	}
	have := st.CachedInfo().Config
	if !have.AllowAtomicPublish || !have.AllowDirect || !have.AllowMsgTTL || have.Discard != jetstream.DiscardNew || !have.DiscardNewPerSubject {
		return nil, fmt.Errorf("jsqueue: stream %s exists but was not made by Pigeonhole (it needs atomic publish, direct get, message TTLs and discard-new per subject)", want.Name)
	}
	if have.Replicas != want.Replicas || have.MaxAge != want.MaxAge || have.MaxMsgsPerSubject != want.MaxMsgsPerSubject || have.MaxMsgSize != want.MaxMsgSize {
		log.Warn("the queue stream exists with other settings than this relay's flags; keeping the stream's (change them with the nats CLI)",
			"stream", want.Name,
			"replicas", have.Replicas, "want_replicas", want.Replicas,
			"max_age", have.MaxAge, "want_max_age", want.MaxAge,
			"per_sender_per_device", have.MaxMsgsPerSubject, "want_per_sender_per_device", want.MaxMsgsPerSubject,
			"max_msg_size", have.MaxMsgSize, "want_max_msg_size", want.MaxMsgSize)
	}
	return st, nil
}

// queueSubject is the subject of sender's messages for device a:
// phq.<account hex>.<device>.<sender hex>. The stream's per-subject limit
// is so the sender's share of the device's queue.
func queueSubject(a queue.Address, sender [16]byte) string {
	return "phq." + a.Token() + "." + hex.EncodeToString(sender[:])
}

// devicePattern matches every message of device a.
func devicePattern(a queue.Address) string {
	return "phq." + a.Token() + ".*"
}

// ofDevice reports whether subj is a message subject of device a.
func ofDevice(subj string, a queue.Address) bool {
	rest, ok := strings.CutPrefix(subj, "phq."+a.Token()+".")
	return ok && len(rest) == 2*16 && !strings.Contains(rest, ".")
}

func wakeSubject(a queue.Address) string {
	return "phw." + a.Token()
}

// dedupSubject names a client message id's record; the id is hashed so
// that any bytes make a valid subject token.
func dedupSubject(key []byte) string {
	h := sha256.Sum256(key)
	return "phd." + hex.EncodeToString(h[:16])
}

// withTimeout gives ctx the configured deadline if it has none.
func (s *Store) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.cfg.Timeout)
}

// pubResponse is JetStream's answer to a batch commit.
type pubResponse struct {
	Stream   string `json:"stream"`
	Sequence uint64 `json:"seq"`
	Error    *struct {
		Code        int    `json:"code"`
		ErrCode     int    `json:"err_code"`
		Description string `json:"description"`
	} `json:"error"`
}

// JetStream error codes the store acts on.
const (
	errWrongLastSeq      = 10071 // the dedup record exists
	errWrongLastSeqConst = 10164 // the dedup record is being written now
	errTooManyInflight   = 10210
	errIncompleteBatch   = 10176 // a message of the batch was refused (too many batches in flight): nothing was stored
)

// Append stores msgs atomically: when it returns nil every message is in
// the stream (on a quorum of its replicas), and readers of each recipient
// are woken. If dedup is not empty and was stored within the dedup
// window, nothing is written and the result says Duplicate. If a recipient
// queue is full, nothing is written and the error is queue.ErrQueueFull;
// if a message's sender has its share of the recipient's queue
// (SenderMaxCount), queue.ErrSenderShare.
func (s *Store) Append(ctx context.Context, dedup []byte, msgs []queue.Message) (queue.AppendResult, error) {
	if len(msgs) == 0 {
		return queue.AppendResult{}, queue.ErrEmpty
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if err := s.checkRoom(ctx, msgs); err != nil {
		if res, dup, derr := s.duplicate(ctx, dedup); derr != nil || dup {
			return res, derr
		}
		return queue.AppendResult{}, err
	}
	for {
		now := time.Now()
		last, err := s.publishBatch(ctx, dedup, msgs, now)
		var je *batchError
		switch {
		case err == nil:
			// The batch's messages have consecutive seqs, the dedup
			// record last; each wake-up names its message's seq.
			first := last + 1 - uint64(len(msgs))
			if len(dedup) > 0 {
				first--
			}
			for i, m := range msgs {
				_ = s.nc.Publish(wakeSubject(m.To), binary.BigEndian.AppendUint64(nil, first+uint64(i)))
			}
			return queue.AppendResult{Time: now}, nil
		case errors.As(err, &je) && je.code == errWrongLastSeq:
			t, ok, lerr := s.dedupTime(ctx, dedup)
			if lerr != nil {
				return queue.AppendResult{}, lerr
			}
			if ok {
				return queue.AppendResult{Time: t, Duplicate: true}, nil
			}
			// The record expired between the two calls: append again,
			// after a pause, so that a record that is there after all
			// cannot make this spin.
			select {
			case <-ctx.Done():
				return queue.AppendResult{}, fmt.Errorf("jsqueue: append: %w", ctx.Err())
			case <-time.After(retryWait):
			}
		case transient(err) || errors.As(err, &je) && (je.code == errWrongLastSeqConst || je.code == errTooManyInflight || je.code == errIncompleteBatch):
			// The stream has no leader at the moment, the same id is being
			// appended through another relay right now, or the stream has
			// too many batches in flight: wait a little and try again.
			select {
			case <-ctx.Done():
				return queue.AppendResult{}, fmt.Errorf("jsqueue: append: %w", ctx.Err())
			case <-time.After(5 * time.Millisecond):
			}
		case errors.As(err, &je) && strings.Contains(je.desc, "maximum messages per subject"):
			// A retry of a stored send is a duplicate, whatever the
			// sender has queued since.
			if res, dup, derr := s.duplicate(ctx, dedup); derr != nil || dup {
				return res, derr
			}
			return queue.AppendResult{}, queue.ErrSenderShare
		case errors.As(err, &je) && strings.Contains(je.desc, "message size exceeds"):
			return queue.AppendResult{}, queue.ErrTooLarge
		default:
			return queue.AppendResult{}, err
		}
	}
}

// batchError is a refused batch.
type batchError struct {
	code int
	desc string
}

func (e *batchError) Error() string {
	return fmt.Sprintf("jsqueue: append refused: %s (%d)", e.desc, e.code)
}

// publishBatch sends msgs and the dedup record as one atomic batch, waits
// for the commit's answer and returns the seq of the batch's last message.
func (s *Store) publishBatch(ctx context.Context, dedup []byte, msgs []queue.Message, now time.Time) (uint64, error) {
	// JetStream allows a bounded number of open batches per stream (50
	// by default, for all relays together); this relay keeps to its
	// share rather than have batches refused.
	select {
	case s.batches <- struct{}{}:
	case <-ctx.Done():
		return 0, fmt.Errorf("jsqueue: append: %w", ctx.Err())
	}
	defer func() { <-s.batches }()
	id := nuid.Next()
	n := len(msgs)
	if len(dedup) > 0 {
		n++
	}
	var resp *nats.Msg
	for i := range n {
		m := nats.NewMsg("")
		m.Header.Set("Nats-Batch-Id", id)
		m.Header.Set("Nats-Batch-Sequence", strconv.Itoa(i+1))
		if i < len(msgs) {
			m.Subject, m.Data = queueSubject(msgs[i].To, msgs[i].Sender), msgs[i].Body
		} else {
			m.Subject = dedupSubject(dedup)
			m.Data = binary.BigEndian.AppendUint64(nil, uint64(now.UnixMilli()))
			m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
			m.Header.Set("Nats-TTL", strconv.FormatInt(int64(s.cfg.DedupWindow/time.Second), 10))
		}
		if i < n-1 {
			if err := s.nc.PublishMsg(m); err != nil {
				return 0, fmt.Errorf("jsqueue: append: %w", err)
			}
			continue
		}
		// The commit is a request on the connection's shared reply
		// subscription (a subscription per append cost a 512 KiB channel).
		m.Header.Set("Nats-Batch-Commit", "1")
		var err error
		resp, err = s.nc.RequestMsgWithContext(ctx, m)
		if errors.Is(err, nats.ErrNoResponders) {
			return 0, errNoLeader // nothing was staged: no stream took the batch
		}
		if err != nil {
			return 0, fmt.Errorf("jsqueue: append: %w", err)
		}
	}
	var pr pubResponse
	if err := json.Unmarshal(resp.Data, &pr); err != nil {
		return 0, fmt.Errorf("jsqueue: append: bad answer: %w", err)
	}
	if pr.Error != nil {
		return 0, &batchError{code: pr.Error.ErrCode, desc: pr.Error.Description}
	}
	return pr.Sequence, nil
}

// dedupTime reads when a client message id was first appended.
func (s *Store) dedupTime(ctx context.Context, dedup []byte) (time.Time, bool, error) {
	// From the leader: a replica behind it may not have the record yet.
	m, err := s.leaderLast(ctx, dedupSubject(dedup))
	switch {
	case errors.Is(err, errNotFound):
		return time.Time{}, false, nil
	case err != nil:
		return time.Time{}, false, fmt.Errorf("jsqueue: read dedup record: %w", err)
	case len(m.Data) != 8:
		return time.Time{}, false, errors.New("jsqueue: corrupt dedup record")
	}
	return time.UnixMilli(int64(binary.BigEndian.Uint64(m.Data))), true, nil
}
