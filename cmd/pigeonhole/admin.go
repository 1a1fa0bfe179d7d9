package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/pigeonhole/pigeonhole/keys"
	"github.com/pigeonhole/pigeonhole/queue"
	"github.com/pigeonhole/pigeonhole/relay"
)

// adminSocketName is the running relay's admin socket in its data
// directory: a Unix socket (mode 0600, in a 0700 directory), so only the
// relay's own user (and root) can use it.
//
// It speaks HTTP/1.1, one request per admin command:
//
//	POST /backup?dest=ABS            make a backup; "ok"
//	GET  /accounts                   one accountRow (JSON) a line
//	POST /accounts/delete?account=ID one deleteResult (JSON)
//	GET  /queues?top=N               one queueSummary (JSON)
//
// Errors are a status other than 200 and one line of text.
const adminSocketName = "admin.sock"

// adminStores is what the admin socket serves from. keys and queues are
// nil in cluster mode (they live in NATS; the accounts and queues
// commands say so).
type adminStores struct {
	data   string
	db     *pebble.DB
	keys   *keys.Store
	queues *queue.Store
	srv    *relay.Server
}

// errClusterAdmin is what the accounts and queues commands say in
// cluster mode.
var errClusterAdmin = errors.New("this relay keeps its accounts and queues in NATS (-store nats://...): the accounts and queues commands work on a single relay's Pebble database only")

// serveAdmin listens on the admin socket in st.data. It returns a
// function that stops it.
func serveAdmin(st adminStores, log *slog.Logger) (func(), error) {
	sock := filepath.Join(st.data, adminSocketName)
	_ = os.Remove(sock) // left by a relay that was killed
	// The data directory is 0700, so nobody else reaches the socket even
	// in the moment before the chmod.
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Chmod(sock, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /backup", func(w http.ResponseWriter, r *http.Request) {
		dest := r.URL.Query().Get("dest")
		if !filepath.IsAbs(dest) {
			http.Error(w, "dest must be an absolute path", http.StatusBadRequest)
			return
		}
		if _, err := os.Stat(dest); err == nil {
			http.Error(w, dest+" exists: give a new directory", http.StatusConflict)
			return
		}
		start := time.Now()
		if err := copyDataDir(st.db, st.data, dest); err != nil {
			log.Error("backup failed", "err", err)
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		log.Info("backup made", "took", time.Since(start).Round(time.Millisecond))
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /accounts", func(w http.ResponseWriter, r *http.Request) {
		if st.keys == nil {
			http.Error(w, errClusterAdmin.Error(), http.StatusNotImplemented)
			return
		}
		w.Header().Set("Content-Type", "application/jsonl")
		enc := json.NewEncoder(w)
		err := listAccounts(r.Context(), st.keys, func(a accountRow) error { return enc.Encode(a) })
		if err != nil {
			// The status is sent: a last line tells the client.
			log.Error("admin: list accounts", "err", err)
			_ = enc.Encode(accountRow{Error: err.Error()})
		}
	})
	mux.HandleFunc("POST /accounts/delete", func(w http.ResponseWriter, r *http.Request) {
		if st.keys == nil {
			http.Error(w, errClusterAdmin.Error(), http.StatusNotImplemented)
			return
		}
		acct, err := parseAccount(r.URL.Query().Get("account"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		res, err := deleteAccount(r.Context(), st.srv, acct)
		switch {
		case errors.Is(err, keys.ErrUnknownAccount):
			http.Error(w, "no such account", http.StatusNotFound)
			return
		case err != nil && res.Account == "":
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		case err != nil:
			// Deleted, but some cleanup failed: say both.
			res.Warning = err.Error()
		}
		_ = json.NewEncoder(w).Encode(res)
	})
	mux.HandleFunc("GET /queues", func(w http.ResponseWriter, r *http.Request) {
		if st.queues == nil {
			http.Error(w, errClusterAdmin.Error(), http.StatusNotImplemented)
			return
		}
		top, err := strconv.Atoi(r.URL.Query().Get("top"))
		if err != nil || top < 0 {
			http.Error(w, "top must be a count", http.StatusBadRequest)
			return
		}
		sum, err := summarizeQueues(r.Context(), st.queues, top, time.Now())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_ = json.NewEncoder(w).Encode(sum)
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	return func() { hs.Close(); os.Remove(sock) }, nil
}

// adminClient returns an HTTP client that reaches the admin socket of
// the relay on data. A failure to connect is a *noRelayError.
func adminClient(data string) *http.Client {
	sock := filepath.Join(data, adminSocketName)
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", sock)
		if err != nil {
			return nil, &noRelayError{err}
		}
		return c, nil
	}}}
}

// noRelayError means no relay answers on the admin socket.
type noRelayError struct{ err error }

func (e *noRelayError) Error() string {
	return "no relay answers on the admin socket: " + e.err.Error()
}
func (e *noRelayError) Unwrap() error { return e.err }

// parseAccount reads an account id: 32 hex digits.
func parseAccount(s string) (keys.AccountID, error) {
	var a keys.AccountID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(a) {
		return a, fmt.Errorf("%q is not an account id (32 hex digits, as \"pigeonhole accounts list\" shows)", s)
	}
	copy(a[:], b)
	return a, nil
}
