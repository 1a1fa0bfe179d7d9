package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pigeonhole/pigeonhole/keys"
	"github.com/pigeonhole/pigeonhole/push"
	"github.com/pigeonhole/pigeonhole/queue"
	"github.com/pigeonhole/pigeonhole/relay"
)

// The accounts and queues commands ask the running relay over its admin
// socket, or, when no relay runs on -data, open the database themselves
// (Pebble's lock keeps both from happening at once).

// adminFlags are the flags the accounts and queues commands share.
type adminFlags struct {
	data     string
	json     bool
	tokenKey string
	top      int
}

func adminFlagSet(name, args, help string, f *adminFlags) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s\n\n%s\n\nflags:\n", strings.TrimSpace("pigeonhole "+name+" [flags] "+args), help)
		fs.PrintDefaults()
	}
	fs.StringVar(&f.data, "data", "pigeonhole-data", "data `directory` of the relay")
	return fs
}

func accountsListFlagSet(f *adminFlags) *flag.FlagSet {
	fs := adminFlagSet("accounts list", "", `Lists the accounts: id, number of devices, the day the oldest was
registered, the last day one opened a session. Asks the running relay
over admin.sock in -data, or reads the database when no relay runs.`, f)
	fs.BoolVar(&f.json, "json", false, "one JSON object a line instead of a table")
	return fs
}

func accountsDeleteFlagSet(f *adminFlags) *flag.FlagSet {
	fs := adminFlagSet("accounts delete", "ACCOUNT", `Deletes an account (32 hex digits, as "accounts list" shows): its keys,
so none of its devices can authenticate again and senders hear
UNKNOWN_ACCOUNT; its connections are closed; its devices' queues and push
tokens are deleted. There is no undo (but "pigeonhole backup").`, f)
	fs.StringVar(&f.tokenKey, "push-token-key", "", "with the relay stopped: the relay's -push-token-key `file`, if it has one (default: push-token.key in -data)")
	return fs
}

func queuesStatsFlagSet(f *adminFlags) *flag.FlagSet {
	fs := adminFlagSet("queues stats", "", `Shows how many queues hold messages, how many messages and bytes wait,
and how old the oldest is, then the largest queues by account and
device. Never a message's contents or sender.`, f)
	fs.BoolVar(&f.json, "json", false, "one JSON object instead of a table")
	fs.IntVar(&f.top, "top", 20, "list this many of the largest queues (by bytes; 0: none)")
	return fs
}

// parseAdmin parses args with fs and wants n arguments after the flags
// (argNames says which, in an error).
// It returns an exit code when the command should stop.
func parseAdmin(fs *flag.FlagSet, args []string, n int, argNames string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	if fs.NArg() != n {
		fmt.Fprintf(os.Stderr, "pigeonhole: %s takes %s\n", fs.Name(), argNames)
		fs.Usage()
		return 2, false
	}
	return 0, true
}

// accountRow is one account in "accounts list" (and on the admin
// socket). Error is set only on a last line, when listing failed.
type accountRow struct {
	Account  string    `json:"account,omitempty"`
	Devices  int       `json:"devices,omitempty"`
	Created  time.Time `json:"created,omitzero"`
	LastSeen time.Time `json:"last_seen,omitzero"`
	Error    string    `json:"error,omitempty"`
}

// listAccounts calls fn with every account of ks.
func listAccounts(ctx context.Context, ks *keys.Store, fn func(accountRow) error) error {
	var ferr error
	err := ks.Accounts(ctx, func(a keys.AccountInfo) bool {
		ferr = fn(accountRow{Account: a.ID.Hex(), Devices: a.Devices, Created: a.Created.UTC(), LastSeen: a.LastSeen})
		return ferr == nil
	})
	return cmp.Or(err, ferr)
}

// deleteResult is what "accounts delete" did.
type deleteResult struct {
	Account string   `json:"account"`
	Devices []uint32 `json:"devices"`
	// Warning is a cleanup step that failed after the account was
	// deleted (a queue left to expire, say).
	Warning string `json:"warning,omitempty"`
}

// deleteAccount deletes acct through srv. A result with an error means
// the account is gone but some cleanup failed.
func deleteAccount(ctx context.Context, srv *relay.Server, acct keys.AccountID) (deleteResult, error) {
	devs, err := srv.DeleteAccount(ctx, acct)
	if devs == nil && err != nil {
		return deleteResult{}, err
	}
	return deleteResult{Account: acct.Hex(), Devices: devs}, err
}

// queueRow is one device's queue in "queues stats".
type queueRow struct {
	Account  string    `json:"account"`
	Device   uint32    `json:"device"`
	Messages int       `json:"messages"`
	Bytes    int64     `json:"bytes"`
	Oldest   time.Time `json:"oldest"`
}

// queueSummary is "queues stats": totals and the largest queues.
type queueSummary struct {
	Queues   int        `json:"queues"`
	Messages int64      `json:"messages"`
	Bytes    int64      `json:"bytes"`
	Oldest   time.Time  `json:"oldest,omitzero"`
	Largest  []queueRow `json:"largest"`
	Now      time.Time  `json:"now"`
}

// summarizeQueues scans every queue of qs once, keeping the top largest
// by bytes.
func summarizeQueues(ctx context.Context, qs *queue.Store, top int, now time.Time) (queueSummary, error) {
	sum := queueSummary{Largest: []queueRow{}, Now: now.UTC()}
	larger := func(a, b queueRow) int {
		return cmp.Or(cmp.Compare(b.Bytes, a.Bytes), cmp.Compare(b.Messages, a.Messages))
	}
	err := qs.QueueStats(ctx, func(st queue.Stats) bool {
		sum.Queues++
		sum.Messages += int64(st.Count)
		sum.Bytes += st.Bytes
		if sum.Oldest.IsZero() || st.Oldest.Before(sum.Oldest) {
			sum.Oldest = st.Oldest.UTC()
		}
		if top == 0 {
			return true
		}
		row := queueRow{Account: hex.EncodeToString(st.Address.Account[:]), Device: st.Address.Device,
			Messages: st.Count, Bytes: st.Bytes, Oldest: st.Oldest.UTC()}
		i, _ := slices.BinarySearchFunc(sum.Largest, row, larger)
		if i < top {
			sum.Largest = slices.Insert(sum.Largest, i, row)
			if len(sum.Largest) > top {
				sum.Largest = sum.Largest[:top]
			}
		}
		return true
	})
	return sum, err
}

// askRelay sends one request to the admin socket of the relay on data.
// It returns a *noRelayError when no relay answers, an error with the
// relay's message for a status other than 200.
func askRelay(ctx context.Context, data, method, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://relay"+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := adminClient(data).Do(req)
	if err != nil {
		var nr *noRelayError
		if errors.As(err, &nr) {
			return nil, nr
		}
		return nil, fmt.Errorf("the relay's admin socket: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		return nil, &relaySaid{status: resp.StatusCode, msg: strings.TrimSpace(string(msg))}
	}
	return resp, nil
}

// relaySaid is an error answer of the admin socket.
type relaySaid struct {
	status int
	msg    string
}

func (e *relaySaid) Error() string { return "the running relay says: " + e.msg }

// openOffline opens the database on data for a command run while no
// relay answers on its admin socket.
func openOffline(data string) (*pebble.DB, error) {
	dir := filepath.Join(data, "db")
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("no relay database in %s (is -data right?)", data)
	}
	db, err := openDB(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		// Pebble's flock on its LOCK file: EWOULDBLOCK while a process
		// holds the database.
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("the database in %s is in use, but no relay answers on %s (a relay started without its admin socket, or another pigeonhole command): stop it, or run this again when it is done: %w",
				data, filepath.Join(data, adminSocketName), err)
		}
		return nil, err
	}
	return db, nil
}

// adminCtx bounds an admin command.
func adminCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Minute)
}

// accountsList is "pigeonhole accounts list".
func accountsList(args []string) int {
	var f adminFlags
	if code, ok := parseAdmin(accountsListFlagSet(&f), args, 0, "no arguments"); !ok {
		return code
	}
	ctx, cancel := adminCtx()
	defer cancel()
	var rows []accountRow
	collect := func(r accountRow) error { rows = append(rows, r); return nil }
	resp, err := askRelay(ctx, f.data, http.MethodGet, "/accounts")
	var nr *noRelayError
	switch {
	case errors.As(err, &nr):
		db, err := openOffline(f.data)
		if err != nil {
			return fail("accounts: %v", err)
		}
		defer db.Close()
		ks, err := keys.Open(db, keys.Config{})
		if err != nil {
			return fail("accounts: %v", err)
		}
		if err := listAccounts(ctx, ks, collect); err != nil {
			return fail("accounts: %v", err)
		}
	case err != nil:
		return fail("accounts: %v", err)
	default:
		defer resp.Body.Close()
		dec := json.NewDecoder(resp.Body)
		for {
			var r accountRow
			if err := dec.Decode(&r); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return fail("accounts: the relay's answer: %v", err)
			}
			if r.Error != "" {
				return fail("accounts: the running relay says: %s", r.Error)
			}
			collect(r)
		}
	}
	if f.json {
		enc := json.NewEncoder(os.Stdout)
		for _, r := range rows {
			_ = enc.Encode(r)
		}
		return 0
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tDEVICES\tCREATED\tLAST SEEN")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", r.Account, r.Devices, day(r.Created), day(r.LastSeen))
	}
	tw.Flush()
	fmt.Fprintf(os.Stderr, "pigeonhole: %d accounts\n", len(rows))
	return 0
}

// day formats t as a date, "-" for zero.
func day(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.DateOnly)
}

// accountsDelete is "pigeonhole accounts delete".
func accountsDelete(args []string) int {
	var f adminFlags
	fs := accountsDeleteFlagSet(&f)
	if code, ok := parseAdmin(fs, args, 1, "one account id"); !ok {
		return code
	}
	acct, err := parseAccount(strings.TrimSpace(fs.Arg(0)))
	if err != nil {
		fmt.Fprintf(os.Stderr, "pigeonhole: %v\n", err)
		return 2
	}
	ctx, cancel := adminCtx()
	defer cancel()
	var res deleteResult
	resp, err := askRelay(ctx, f.data, http.MethodPost, "/accounts/delete?account="+url.QueryEscape(acct.Hex()))
	var nr *noRelayError
	var rs *relaySaid
	switch {
	case errors.As(err, &nr):
		if res, err = deleteOffline(ctx, f, acct); errors.Is(err, keys.ErrUnknownAccount) {
			return fail("accounts delete: no account %s", acct.Hex())
		} else if err != nil && res.Account == "" {
			return fail("accounts delete: %v", err)
		} else if err != nil {
			res.Warning = err.Error()
		}
	case errors.As(err, &rs) && rs.status == http.StatusNotFound:
		return fail("accounts delete: no account %s", acct.Hex())
	case err != nil:
		return fail("accounts delete: %v", err)
	default:
		defer resp.Body.Close()
		if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&res); err != nil {
			return fail("accounts delete: the relay's answer: %v", err)
		}
	}
	fmt.Fprintf(os.Stderr, "pigeonhole: deleted account %s (devices %v, with their queues and push tokens)\n", res.Account, res.Devices)
	if res.Warning != "" {
		return fail("accounts delete: the account is gone, but: %s", res.Warning)
	}
	return 0
}

// deleteOffline deletes acct from the database of a stopped relay: the
// same steps as the running relay's (relay.Server.DeleteAccount), with
// its push tokens removed from the database directly.
func deleteOffline(ctx context.Context, f adminFlags, acct keys.AccountID) (deleteResult, error) {
	db, err := openOffline(f.data)
	if err != nil {
		return deleteResult{}, err
	}
	defer db.Close()
	ks, err := keys.Open(db, keys.Config{})
	if err != nil {
		return deleteResult{}, err
	}
	qs, err := queue.Open(db, queue.Config{}, slog.New(slog.DiscardHandler))
	if err != nil {
		return deleteResult{}, err
	}
	srv, err := relay.New(relay.Config{}, ks, qs, nil, prometheus.NewRegistry())
	if err != nil {
		return deleteResult{}, err
	}
	res, err := deleteAccount(ctx, srv, acct)
	if res.Account == "" {
		return res, err
	}
	tokens, terr := offlineTokens(db, f)
	if terr == nil {
		for _, d := range res.Devices {
			terr = errors.Join(terr, tokens.Delete(ctx, push.Device{Account: acct, ID: d}))
		}
	}
	return res, errors.Join(err, terr)
}

// offlineTokens opens the push token store of a stopped relay. Without
// the sealing key (push never on, or its key file not given) tokens are
// still deleted: a record is found by its device, not opened, and the
// index records it leaves name no token.
func offlineTokens(db *pebble.DB, f adminFlags) (*push.Store, error) {
	path := cmp.Or(f.tokenKey, filepath.Join(f.data, pushTokenKeyFile))
	k, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist) && f.tokenKey == "":
		k = make([]byte, push.SealKeySize)
		rand.Read(k)
	case err != nil:
		return nil, fmt.Errorf("read -push-token-key: %w", err)
	case len(k) != push.SealKeySize:
		return nil, fmt.Errorf("%s holds %d bytes, want %d", path, len(k), push.SealKeySize)
	}
	return push.NewStore(db, k)
}

// queuesStats is "pigeonhole queues stats".
func queuesStats(args []string) int {
	var f adminFlags
	if code, ok := parseAdmin(queuesStatsFlagSet(&f), args, 0, "no arguments"); !ok {
		return code
	}
	if f.top < 0 {
		fmt.Fprintln(os.Stderr, "pigeonhole: -top is a count, 0 or more")
		return 2
	}
	ctx, cancel := adminCtx()
	defer cancel()
	var sum queueSummary
	resp, err := askRelay(ctx, f.data, http.MethodGet, "/queues?top="+strconv.Itoa(f.top))
	var nr *noRelayError
	switch {
	case errors.As(err, &nr):
		db, err := openOffline(f.data)
		if err != nil {
			return fail("queues: %v", err)
		}
		defer db.Close()
		qs, err := queue.Open(db, queue.Config{}, slog.New(slog.DiscardHandler))
		if err != nil {
			return fail("queues: %v", err)
		}
		if sum, err = summarizeQueues(ctx, qs, f.top, time.Now()); err != nil {
			return fail("queues: %v", err)
		}
	case err != nil:
		return fail("queues: %v", err)
	default:
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&sum); err != nil {
			return fail("queues: the relay's answer: %v", err)
		}
	}
	if f.json {
		_ = json.NewEncoder(os.Stdout).Encode(sum)
		return 0
	}
	oldest := "-"
	if !sum.Oldest.IsZero() {
		oldest = sum.Now.Sub(sum.Oldest).Round(time.Second).String() + " ago"
	}
	fmt.Printf("queues %d, messages %d, bytes %d, oldest %s\n", sum.Queues, sum.Messages, sum.Bytes, oldest)
	if len(sum.Largest) == 0 {
		return 0
	}
	fmt.Println()
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tDEVICE\tMESSAGES\tBYTES\tOLDEST")
	for _, r := range sum.Largest {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s ago\n", r.Account, r.Device, r.Messages, r.Bytes, sum.Now.Sub(r.Oldest).Round(time.Second))
	}
	tw.Flush()
	return 0
}
