package main

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // readQRPNG also takes photos
	"image/png"
	"io"
	"os"
	"path/filepath"

	"github.com/makiuchi-d/gozxing"
	zxqr "github.com/makiuchi-d/gozxing/qrcode"
	"github.com/skip2/go-qrcode"
)

const (
	// qrMinPixels is the least width and height of a QR code PNG.
	qrMinPixels = 256
	// maxQRFileBytes bounds the image file readQRPNG reads.
	maxQRFileBytes = 10 << 20
	// maxQRImagePixels bounds the decoded image (width × height), so a
	// small file cannot claim a huge image.
	maxQRImagePixels = 50_000_000
)

// qrTerminal renders text as a QR code for a terminal: half-block
// characters, two module rows a line, medium error correction, with the
// quiet zone. Light modules are drawn as blocks, so the code reads dark on
// light on a terminal with a dark background.
func qrTerminal(text string) (string, error) {
	q, err := qrcode.New(text, qrcode.Medium)
	if err != nil {
		return "", fmt.Errorf("QR code: %w", err)
	}
	return q.ToSmallString(false), nil
}

// writeQRPNG writes text as a QR code PNG of at least qrMinPixels square,
// with medium error correction and whole-pixel modules, to path, mode
// 0600. The file is replaced atomically: a temporary file in the same
// directory is renamed over path.
func writeQRPNG(path, text string) error {
	q, err := qrcode.New(text, qrcode.Medium)
	if err != nil {
		return fmt.Errorf("QR code: %w", err)
	}
	modules := len(q.Bitmap()) // with the quiet zone
	scale := (qrMinPixels + modules - 1) / modules
	var buf bytes.Buffer
	if err := png.Encode(&buf, q.Image(-scale)); err != nil {
		return fmt.Errorf("QR code PNG: %w", err)
	}
	return writeFileAtomic(path, buf.Bytes())
}

// writeFileAtomic replaces name with data, mode 0600: a crash leaves the
// old or the new contents, never a torn file.
func writeFileAtomic(name string, data []byte) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(name), ".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			err = fmt.Errorf("write %s: %w", name, err)
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), name)
}

// readQRPNG decodes the QR code in a PNG or JPEG image file of at most
// maxQRFileBytes and returns its text.
func readQRPNG(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxQRFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxQRFileBytes {
		return "", fmt.Errorf("%s: larger than %d MiB, not a QR code image", path, maxQRFileBytes>>20)
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return "", fmt.Errorf("%s: not a PNG or JPEG image: %w", path, err)
	}
	if int64(cfg.Width)*int64(cfg.Height) > maxQRImagePixels {
		return "", fmt.Errorf("%s: image of %d×%d pixels is too large", path, cfg.Width, cfg.Height)
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return "", fmt.Errorf("%s: not a PNG or JPEG image: %w", path, err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	// A code pigeon link wrote is a clean, axis-aligned image: read it as
	// such first (the general finder misses some clean codes), then look
	// for a code anywhere, as in a photo or screenshot.
	res, err := zxqr.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true})
	if err != nil {
		res, err = zxqr.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_TRY_HARDER: true})
	}
	if err != nil {
		var nf gozxing.NotFoundException
		if errors.As(err, &nf) {
			return "", fmt.Errorf("%s: no QR code found in the image: %w", path, err)
		}
		return "", fmt.Errorf("%s: unreadable QR code: %w", path, err)
	}
	return res.GetText(), nil
}
