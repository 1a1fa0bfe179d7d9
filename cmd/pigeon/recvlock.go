package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockReceiving makes sure one process at a time receives for the state
// directory: two would split the device's messages between them, each
// acking what the other never shows. The lock file holds the holder's pid
// so the refusal can name it; the kernel drops the lock when the holder
// exits, however it exits.
func (c *cli) lockReceiving() (unlock func(), err error) {
	path := filepath.Join(c.dir, "receive.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock receiving: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder := "another pigeon"
			if b, err := os.ReadFile(path); err == nil {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
					holder = fmt.Sprintf("another pigeon (pid %d)", pid)
				}
			}
			return nil, failf("stop it first; each device receives in one place (another device needs its own -dir, linked with \"pigeon link\")",
				"%s is already receiving for %s", holder, c.dir)
		}
		return nil, fmt.Errorf("lock receiving: %w", err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() {
		_ = f.Truncate(0)
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
