package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestSafeName(t *testing.T) {
	for in, want := range map[string]string{
		"photo.jpg":           "photo.jpg",
		"../../etc/passwd":    "passwd",
		`..\..\boot.ini`:      "boot.ini",
		"/":                   "file",
		"..":                  "file",
		".bashrc":             "file.bashrc",
		"a\x1b[31mred.txt":    "a[31mred.txt",
		"gpj.\u202eexe":       "gpj.exe",
		"":                    "file",
		"new\nline\u0085.pdf": "newline.pdf",
	} {
		if got := safeName(in); got != want {
			t.Errorf("safeName(%q) = %q, want %q", in, got, want)
		}
	}
	long := safeName(string(make([]rune, 300, 300)) + "éééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééé")
	if len(long) > 200 || !utf8.ValidString(long) {
		t.Errorf("long name %d bytes, valid %v", len(long), utf8.ValidString(long))
	}
}

func TestLinkFreeNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	tmp := filepath.Join(dir, ".part")
	os.WriteFile(tmp, []byte("new"), 0o600)
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("old"), 0o600)
	p, err := linkFree(tmp, dir, "a.txt")
	if err != nil || filepath.Base(p) != "a (1).txt" {
		t.Fatalf("linkFree = %q, %v", p, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a.txt")); string(b) != "old" {
		t.Fatal("the existing file was replaced")
	}
}

func TestCleanStaleParts(t *testing.T) {
	dir := t.TempDir()
	old, young, other := filepath.Join(dir, ".pigeon-1.part"), filepath.Join(dir, ".pigeon-2.part"), filepath.Join(dir, "keep.part")
	for _, p := range []string{old, young, other} {
		os.WriteFile(p, []byte("partial"), 0o600)
	}
	now := time.Now()
	os.Chtimes(old, now.Add(-2*time.Hour), now.Add(-2*time.Hour))
	os.Chtimes(other, now.Add(-2*time.Hour), now.Add(-2*time.Hour))
	if n := cleanStaleParts(dir, now); n != 1 {
		t.Fatalf("removed %d", n)
	}
	for p, want := range map[string]bool{old: false, young: true, other: true} {
		if _, err := os.Stat(p); (err == nil) != want {
			t.Errorf("%s exists: %v, want %v", filepath.Base(p), err == nil, want)
		}
	}
}

// TestProgressBar: on a terminal the bar shows the share done and ends
// with a newline; elsewhere (scripts, logs) it prints nothing.
func TestProgressBar(t *testing.T) {
	var out bytes.Buffer
	b := &bar{c: &cli{stderr: &out}, label: "uploading x", total: 200, tty: true}
	b.add(100)
	b.done()
	if s := out.String(); !strings.Contains(s, "uploading x [###############               ]  50%") || !strings.HasSuffix(s, "100 bytes\n") {
		t.Fatalf("bar output %q", s)
	}
	out.Reset()
	quiet := (&cli{stderr: &out}).progress("downloading y", 10)
	quiet.add(10)
	quiet.done()
	if out.Len() != 0 {
		t.Fatalf("a bar on a non-terminal printed %q", out.String())
	}
}
