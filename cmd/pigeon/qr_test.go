package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pigeonhole/pigeonhole/relay/client"
)

func randomLinkURI(t *testing.T) string {
	t.Helper()
	u := client.LinkURI{
		Relay:     "relay.example.org:4433",
		Address:   make([]byte, 16),
		PublicKey: make([]byte, 33),
	}
	rand.Read(u.Address)
	rand.Read(u.PublicKey)
	u.PublicKey[0] = 0x05
	fp := make([]byte, sha256.Size)
	rand.Read(fp)
	u.Fingerprint = hex.EncodeToString(fp)
	s := u.String()
	if _, err := client.ParseLinkURI(s); err != nil {
		t.Fatalf("test link URI: %v", err)
	}
	return s
}

func TestQRPNGRoundTrip(t *testing.T) {
	text := randomLinkURI(t)
	path := filepath.Join(t.TempDir(), "link.png")
	if err := writeQRPNG(path, text); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := png.DecodeConfig(f)
	f.Close()
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if cfg.Width < 256 || cfg.Height < 256 {
		t.Errorf("image is %d×%d, want at least 256×256", cfg.Width, cfg.Height)
	}
	got, err := readQRPNG(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != text {
		t.Errorf("read back\n%s\nwant\n%s", got, text)
	}
	// A second write replaces the file and leaves no temporary behind.
	text2 := randomLinkURI(t)
	if err := writeQRPNG(path, text2); err != nil {
		t.Fatal(err)
	}
	if got, err := readQRPNG(path); err != nil || got != text2 {
		t.Errorf("after rewrite: %q, %v; want %q", got, err, text2)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d files, want 1", len(entries))
	}
}

func TestWriteQRPNGNoDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "link.png")
	if err := writeQRPNG(path, "x"); err == nil {
		t.Error("writeQRPNG into a missing directory succeeded")
	}
}

func TestReadQRPNGNoQRCode(t *testing.T) {
	img := image.NewGray(image.Rect(0, 0, 300, 300))
	for y := 0; y < 300; y++ {
		for x := 0; x < 300; x++ {
			img.SetGray(x, y, color.Gray{Y: uint8(x ^ y)})
		}
	}
	path := filepath.Join(t.TempDir(), "blank.png")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = readQRPNG(path)
	if err == nil || !strings.Contains(err.Error(), "no QR code") {
		t.Errorf("readQRPNG of an image without a QR code: %v, want a no QR code error", err)
	}
}

func TestReadQRPNGNotImage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "text.png")
	if err := os.WriteFile(path, []byte("pigeonhole://link?v=1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := readQRPNG(path)
	if err == nil || !strings.Contains(err.Error(), "not a PNG or JPEG image") {
		t.Errorf("readQRPNG of a text file: %v, want a not an image error", err)
	}
}

func TestReadQRPNGTooLarge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.png")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	err = f.Truncate(maxQRFileBytes + 1)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	_, err = readQRPNG(path)
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("readQRPNG of a large file: %v, want a size error", err)
	}
}

func TestReadQRPNGMissing(t *testing.T) {
	if _, err := readQRPNG(filepath.Join(t.TempDir(), "none.png")); !os.IsNotExist(err) {
		t.Errorf("readQRPNG of a missing file: %v, want not exist", err)
	}
}

func TestQRTerminal(t *testing.T) {
	s, err := qrTerminal(randomLinkURI(t))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	if len(lines) < 10 {
		t.Fatalf("%d lines, want a multi-line QR code:\n%s", len(lines), s)
	}
	width := len([]rune(lines[0]))
	for i, l := range lines {
		if n := len([]rune(l)); n != width {
			t.Errorf("line %d is %d characters wide, want %d", i, n, width)
		}
		if strings.Trim(l, " █▀▄") != "" {
			t.Errorf("line %d holds characters other than half blocks: %q", i, l)
		}
	}
	// The quiet zone is light: drawn as full blocks.
	if strings.Trim(lines[0], "█") != "" {
		t.Errorf("first line is not quiet zone: %q", lines[0])
	}
}

func TestQRTooLong(t *testing.T) {
	long := strings.Repeat("x", 5000)
	if _, err := qrTerminal(long); err == nil {
		t.Error("qrTerminal of 5000 bytes succeeded")
	}
	if err := writeQRPNG(filepath.Join(t.TempDir(), "x.png"), long); err == nil {
		t.Error("writeQRPNG of 5000 bytes succeeded")
	}
}
