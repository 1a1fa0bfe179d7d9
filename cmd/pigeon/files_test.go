package main

import (
	"os"
	"path/filepath"
	"testing"
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
