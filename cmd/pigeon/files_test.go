package main

import (
	"os"
	"path/filepath"
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
