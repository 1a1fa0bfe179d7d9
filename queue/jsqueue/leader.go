package jsqueue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// storedMsg is a message as the stream leader returns it.
type storedMsg struct {
	Subject  string    `json:"subject"`
	Sequence uint64    `json:"seq"`
	Data     []byte    `json:"data,omitempty"`
	Time     time.Time `json:"time"`
}

// errNotFound is the leader's "no message found".
var errNotFound = errors.New("jsqueue: no message found")

// leaderGet reads message seq, or with nextBySubj the first message on
// that subject at or after seq, from the stream leader (lastBySubj:
// leaderLast). Direct gets, which
// Read uses, are answered by any replica and a replica may not have the
// newest messages yet; the leader has every acknowledged one.
func (s *Store) leaderGet(ctx context.Context, seq uint64, nextBySubj string) (*storedMsg, error) {
	req, _ := json.Marshal(struct {
		Seq     uint64 `json:"seq"`
		NextFor string `json:"next_by_subj,omitempty"`
	}{seq, nextBySubj})
	return s.leaderRequest(ctx, req)
}

// leaderLast reads the last message on a subject from the stream leader.
func (s *Store) leaderLast(ctx context.Context, subj string) (*storedMsg, error) {
	req, _ := json.Marshal(struct {
		LastFor string `json:"last_by_subj"`
	}{subj})
	return s.leaderRequest(ctx, req)
}

func (s *Store) leaderRequest(ctx context.Context, req []byte) (*storedMsg, error) {
	var out *storedMsg
	err := again(ctx, func() error {
		resp, err := s.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+s.cfg.Stream, req)
		if errors.Is(err, nats.ErrNoResponders) {
			return errNoLeader
		}
		if err != nil {
			return fmt.Errorf("jsqueue: get: %w", err)
		}
		var r struct {
			Message *storedMsg `json:"message"`
			Error   *struct {
				Code    int    `json:"code"`
				ErrCode int    `json:"err_code"`
				Desc    string `json:"description"`
			} `json:"error"`
		}
		if err := json.Unmarshal(resp.Data, &r); err != nil {
			return fmt.Errorf("jsqueue: get: bad answer: %w", err)
		}
		switch {
		case r.Error != nil && r.Error.ErrCode == 10037:
			return errNotFound
		case r.Error != nil && r.Error.Code == 503:
			return errNoLeader
		case r.Error != nil:
			return fmt.Errorf("jsqueue: get: %s (%d)", r.Error.Desc, r.Error.ErrCode)
		case r.Message == nil:
			return errors.New("jsqueue: get: empty answer")
		}
		out = r.Message
		return nil
	})
	return out, err
}
