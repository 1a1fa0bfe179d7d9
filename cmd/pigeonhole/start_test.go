package main

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestListeningSaidOnce: at the default log level, a relay announces
// that it listens in one line, not once on stdout and again in the log.
func TestListeningSaidOnce(t *testing.T) {
	cmd := exec.Command(os.Args[0], "serve", "-data", t.TempDir(), "-listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "PIGEONHOLE_TEST_AS_MAIN=1", "QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING=true")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	var stdout bytes.Buffer
	ready := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		seen := false
		for sc.Scan() {
			stdout.WriteString(sc.Text() + "\n")
			if !seen && strings.HasPrefix(sc.Text(), "pigeonhole: certificate fingerprint ") {
				seen = true
				close(ready)
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case <-ready:
	case <-done:
		t.Fatalf("relay exited before it was ready:\n%s", stderr.String())
	case <-time.After(patience):
		t.Fatalf("relay not ready within %v", patience)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(patience):
		t.Fatal("relay did not exit after SIGTERM")
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("relay exit: %v\n%s", err, stderr.String())
	}
	all := stdout.String() + stderr.String()
	if n := strings.Count(all, "listening"); n != 1 {
		t.Fatalf("\"listening\" said %d times:\n%s", n, all)
	}
}

// TestBusyPortLeavesNoDataDir: a relay that cannot bind its port says
// so and leaves no data directory behind (the next try starts clean); a
// data directory that existed before stays as it was.
func TestBusyPortLeavesNoDataDir(t *testing.T) {
	busy, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := busy.LocalAddr().String()

	fresh := filepath.Join(t.TempDir(), "new-data")
	out, err := pigeonholeCmd(t, "serve", "-data", fresh, "-listen", addr, "-log-level", "error")
	if err == nil || !strings.Contains(out, "address already in use") {
		t.Fatalf("serve on a busy port: %v\n%s", err, out)
	}
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		entries, _ := os.ReadDir(fresh)
		t.Fatalf("a failed start left %s behind (%v, %d entries)", fresh, err, len(entries))
	}

	old := t.TempDir()
	keep := filepath.Join(old, "keep")
	if err := os.WriteFile(keep, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := pigeonholeCmd(t, "serve", "-data", old, "-listen", addr, "-log-level", "error"); err == nil {
		t.Fatalf("serve on a busy port succeeded:\n%s", out)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Fatalf("a failed start touched an existing data directory: %v", err)
	}
}
