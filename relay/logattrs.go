package relay

import (
	"context"
	"log/slog"
)

// debugAttr returns the attribute key=v when the relay logs at debug
// level, and an empty attribute (which slog drops) otherwise. Client
// addresses and account id prefixes go through it: at the default (info)
// level the log holds neither, so it cannot link a connection or a line
// to an account; an operator debugging a problem turns them on with
// -log-level debug.
func (s *Server) debugAttr(key string, v any) slog.Attr {
	if !s.log.Enabled(context.Background(), slog.LevelDebug) {
		return slog.Attr{}
	}
	return slog.Any(key, v)
}
