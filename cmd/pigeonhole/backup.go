package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

const backupUsage = `usage: pigeonhole backup [-data DIR] DEST

Copies the relay's data directory to DEST (which must not exist) while the
relay runs or not: a consistent Pebble checkpoint of the database (keys,
queues, push tokens, quotas) and a copy of everything else in it (the
certificate and its key, the push token key, media of -media dir).

To restore, stop the relay and start it with -data DEST (or move DEST to
where -data points). Clients see the same certificate, accounts and queued
messages as at the moment of the backup.

flags:
`

func backupFlagSet(data *string) *flag.FlagSet {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), backupUsage); fs.PrintDefaults() }
	fs.StringVar(data, "data", "pigeonhole-data", "data `directory` of the relay")
	return fs
}

// backup is "pigeonhole backup".
func backup(args []string) int {
	data := new(string)
	fs := backupFlagSet(data)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprint(os.Stderr, "pigeonhole: backup needs one destination directory\n")
		fs.Usage()
		return 2
	}
	dest, err := filepath.Abs(fs.Arg(0))
	if err != nil {
		return fail("%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	how, err := runBackup(ctx, *data, dest)
	if err != nil {
		return fail("backup: %v", err)
	}
	fmt.Fprintf(os.Stderr, "pigeonhole: backed up %s to %s (%s)\n", *data, dest, how)
	return 0
}

// runBackup backs data up to dest: through the running relay's admin
// socket if it answers, else by opening the database itself.
func runBackup(ctx context.Context, data, dest string) (string, error) {
	if _, err := os.Stat(dest); err == nil {
		return "", fmt.Errorf("%s exists: give a new directory", dest)
	}
	if _, err := os.Stat(filepath.Join(data, "db")); err != nil {
		return "", fmt.Errorf("no relay database in %s (is -data right?)", data)
	}
	hc := adminClient(data)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://relay/backup?dest="+url.QueryEscape(dest), nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err == nil {
		defer resp.Body.Close()
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("the running relay says: %s", strings.TrimSpace(string(msg)))
		}
		return "made by the running relay", nil
	}
	// No relay answers: the database is ours to open (Pebble's lock
	// refuses if a relay holds it after all).
	db, err := openDB(filepath.Join(data, "db"), slog.New(slog.DiscardHandler))
	if err != nil {
		return "", fmt.Errorf("the relay is not running, and %w", err)
	}
	defer db.Close()
	if err := copyDataDir(db, data, dest); err != nil {
		return "", err
	}
	return "the relay was not running", nil
}

// copyDataDir writes a backup of data to dest: the database as a Pebble
// checkpoint (consistent, with the WAL flushed, hard links where the file
// system allows), every other file copied.
func copyDataDir(db *pebble.DB, data, dest string) (err error) {
	if err := os.MkdirAll(filepath.Dir(dest), 0o700); err != nil {
		return err
	}
	tmp := dest + ".partial"
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := db.Checkpoint(filepath.Join(tmp, "db"), pebble.WithFlushedWAL()); err != nil {
		return fmt.Errorf("checkpoint the database: %w", err)
	}
	err = filepath.WalkDir(data, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(data, path)
		if err != nil {
			return err
		}
		switch {
		case rel == ".":
			return nil
		case rel == "db" && d.IsDir():
			return filepath.SkipDir
		case d.IsDir():
			return os.Mkdir(filepath.Join(tmp, rel), 0o700)
		case !d.Type().IsRegular(): // the admin socket, a ready file's link
			return nil
		}
		return copyFile(path, filepath.Join(tmp, rel))
	})
	if err != nil {
		return fmt.Errorf("copy %s: %w", data, err)
	}
	return os.Rename(tmp, dest)
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, st.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
