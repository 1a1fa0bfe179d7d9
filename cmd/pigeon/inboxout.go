package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
)

// What recv and listen print for a batch of stored envelopes (everything
// up to the relay's "drained") is held back until the batch ends, so that
// a delete for everyone in the same batch as the message it deletes
// removes the message's line before it is printed: only the "deleted a
// message" notice appears, where the delete arrived. Envelopes are acked
// as they are handled (the history has them: inbox returns nil to the
// Messenger once it recorded them); only the printing waits.
// A batch prints early when it holds maxHeldLines lines or maxHeldBytes
// bytes, and when "listen -n N" holds the N-th line.
const (
	maxHeldLines = 256
	maxHeldBytes = 4 << 20
)

// heldLine is one line of output not printed yet. key names the message
// it shows (msgKey), "" for a line no delete refers to.
type heldLine struct {
	key  string
	line []byte
}

// msgKey names a message in conversation conv by its sender (as the
// history keeps it: "" for this account) and its id.
func msgKey(conv []byte, from string, id []byte) string {
	return hex.EncodeToString(conv) + "/" + from + "/" + hex.EncodeToString(id)
}

// out prints one line of output (without its newline), or holds it while
// a batch is arriving.
func (in *inbox) out(key string, line string) {
	if !in.holding {
		in.write([]byte(line + "\n"))
		return
	}
	in.held = append(in.held, heldLine{key: key, line: []byte(line + "\n")})
	in.heldBytes += len(line) + 1
	if len(in.held) >= maxHeldLines || in.heldBytes >= maxHeldBytes || (in.limit > 0 && in.printed+len(in.held) >= in.limit) {
		in.flush(true)
	}
}

// outJSON prints one JSON Lines object, or holds it.
func (in *inbox) outJSON(key string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("pigeon: cannot encode %T: %v", v, err)) // only plain fields: cannot happen
	}
	in.out(key, string(b))
}

// unprint drops the held line of the message key, if it is held, and
// reports whether it was.
func (in *inbox) unprint(key string) bool {
	i := slices.IndexFunc(in.held, func(h heldLine) bool { return h.key == key })
	if i < 0 {
		return false
	}
	in.heldBytes -= len(in.held[i].line)
	in.held = slices.Delete(in.held, i, i+1)
	return true
}

// flush prints what is held; unless more of the batch is coming (keep),
// it stops holding.
func (in *inbox) flush(keep bool) {
	for _, h := range in.held {
		in.write(h.line)
	}
	in.held, in.heldBytes = in.held[:0], 0
	in.holding = keep
}

// write prints one line; at "listen -n N"'s N-th it ends receiving
// (the envelope being handled is still acked).
func (in *inbox) write(b []byte) {
	_, _ = in.c.stdout.Write(b)
	in.printed++
	if in.limit > 0 && in.printed >= in.limit && !in.stopped {
		in.stopped = true
		in.stop()
	}
}
