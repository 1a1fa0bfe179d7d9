package e2e

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

const (
	dirMode  = 0o700
	fileMode = 0o600
)

// lockName is the file in a DirStorage's directory that Transact locks.
// It is not a key.
const lockName = "lock"

// DirStorage is the Storage in a directory, the layout Open and Create
// have always used: each key is a file (its '/'-separated segments are
// subdirectories), directories 0700, files 0600. Transact takes an
// exclusive flock(2) on the file "lock" in the directory, so processes
// sharing the directory take turns; it keeps fn's writes in memory and
// applies them when fn returns nil, each file replaced atomically (a
// crash leaves the old or the new contents of a file, never a torn one)
// in the order fn last wrote them. A crash while they are applied can
// leave the first of them written and not the rest, as before this
// type existed.
type DirStorage struct {
	dir string
}

var _ Storage = (*DirStorage)(nil)

// NewDirStorage returns the storage in dir, which must exist for
// Transact to work (Create makes it).
func NewDirStorage(dir string) *DirStorage { return &DirStorage{dir: dir} }

// Dir returns the storage's directory.
func (s *DirStorage) Dir() string { return s.dir }

// Transact runs fn holding the directory's lock and applies its writes
// if it returns nil. The wait for the lock is not cut short by ctx; ctx
// is checked before it.
func (s *DirStorage) Transact(ctx context.Context, fn func(Txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	unlock, err := lockDir(s.dir)
	if err != nil {
		return err
	}
	defer unlock()
	tx := &dirTxn{s: s, vals: map[string][]byte{}, seq: map[string]int{}}
	defer func() { tx.done = true }()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.commit()
}

// dirTxn is a DirStorage transaction: the writes in vals (nil for a
// delete), in the order of order; seq[key] is the position of key's
// last write in order.
type dirTxn struct {
	s     *DirStorage
	vals  map[string][]byte
	seq   map[string]int
	order []string
	done  bool
}

var errTxnDone = errors.New("e2e: storage transaction used after it ended")

// checkKey refuses what is not a Storage key, so no key names a file
// outside the directory, a temporary file or the lock.
func checkKey(key string) error {
	if key == lockName {
		return fmt.Errorf("e2e: bad storage key %q", key)
	}
	for seg := range strings.SplitSeq(key, "/") {
		if seg == "" || seg[0] == '.' {
			return fmt.Errorf("e2e: bad storage key %q", key)
		}
		for _, r := range seg {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
				return fmt.Errorf("e2e: bad storage key %q", key)
			}
		}
	}
	return nil
}

func (t *dirTxn) path(key string) string { return filepath.Join(t.s.dir, filepath.FromSlash(key)) }

func (t *dirTxn) write(key string, value []byte) error {
	if t.done {
		return errTxnDone
	}
	if err := checkKey(key); err != nil {
		return err
	}
	t.vals[key] = value
	t.seq[key] = len(t.order)
	t.order = append(t.order, key)
	return nil
}

// Get returns the value under key: this transaction's write, or the file.
func (t *dirTxn) Get(key string) ([]byte, error) {
	if t.done {
		return nil, errTxnDone
	}
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if v, ok := t.vals[key]; ok {
		return v, nil
	}
	return readFile(t.path(key))
}

// Put stores value under key when the transaction commits.
func (t *dirTxn) Put(key string, value []byte) error {
	if value == nil {
		value = []byte{}
	}
	return t.write(key, value)
}

// Delete removes key when the transaction commits.
func (t *dirTxn) Delete(key string) error { return t.write(key, nil) }

// List returns the keys under prefix: the files below the directory
// prefix names up to its last '/', and this transaction's writes.
func (t *dirTxn) List(prefix string) ([]string, error) {
	if t.done {
		return nil, errTxnDone
	}
	root := t.s.dir
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		if err := checkKey(prefix[:i]); err != nil {
			return nil, err
		}
		root = t.path(prefix[:i])
	}
	seen := map[string]bool{}
	var out []string
	add := func(k string) {
		if !seen[k] && strings.HasPrefix(k, prefix) {
			if v, ok := t.vals[k]; !ok || v != nil {
				out = append(out, k)
			}
			seen[k] = true
		}
	}
	err := filepath.WalkDir(root, func(path string, de fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if path == root {
			return nil
		}
		if strings.HasPrefix(de.Name(), ".") {
			if de.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if de.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(t.s.dir, path)
		if err != nil {
			return err
		}
		if k := filepath.ToSlash(rel); k != lockName {
			add(k)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("e2e: list %s: %w", prefix, err)
	}
	for k := range t.vals {
		add(k)
	}
	return out, nil
}

// commit applies the writes in the order of their last write. A delete
// that empties a directory below the top level (a group's) removes it.
func (t *dirTxn) commit() error {
	for i, key := range t.order {
		if t.seq[key] != i {
			continue
		}
		name := t.path(key)
		if v := t.vals[key]; v != nil {
			if err := writeFile(name, v); err != nil {
				return fmt.Errorf("e2e: save %s: %w", key, err)
			}
			continue
		}
		if err := remove(name); err != nil {
			return fmt.Errorf("e2e: delete %s: %w", key, err)
		}
		if strings.Count(key, "/") > 1 {
			_ = os.Remove(filepath.Dir(name)) // fails unless empty
		}
	}
	return nil
}

// writeFile replaces name atomically: a crash leaves the old or the new
// contents, never a torn file.
func writeFile(name string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(name), dirMode); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(name), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(fileMode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), name)
}

// readFile returns nil, nil when name does not exist.
func readFile(name string) ([]byte, error) {
	b, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

func remove(name string) error {
	if err := os.Remove(name); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

// lockDir takes an exclusive lock on dir, waiting for other processes.
func lockDir(dir string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_CREATE|os.O_RDWR, fileMode)
	if err != nil {
		return nil, fmt.Errorf("lock state: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock state: %w", err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
