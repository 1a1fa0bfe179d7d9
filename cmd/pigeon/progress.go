package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// bar is a progress bar on stderr, drawn only when stderr is a terminal,
// at most ten times a second.
type bar struct {
	c     *cli
	label string
	total int64
	n     atomic.Int64
	last  time.Time
	tty   bool
}

func (c *cli) progress(label string, total int64) *bar {
	tty := false
	if f, ok := c.stderr.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &bar{c: c, label: label, total: total, tty: tty}
}

func (b *bar) add(n int) {
	v := b.n.Add(int64(n))
	if !b.tty || time.Since(b.last) < 100*time.Millisecond {
		return
	}
	b.last = time.Now()
	b.draw(v)
}

func (b *bar) draw(v int64) {
	const width = 30
	frac := 1.0
	if b.total > 0 {
		frac = float64(v) / float64(b.total)
	}
	filled := min(int(frac*width), width)
	fmt.Fprintf(b.c.stderr, "\rpigeon: %s [%-*s] %3.0f%% %s", b.label, width, strings.Repeat("#", filled), frac*100, humanSize(v))
}

func (b *bar) done() {
	if b.tty {
		b.draw(b.n.Load())
		fmt.Fprintln(b.c.stderr)
	}
}

// countingReader and countingWriter move the bar as bytes pass.
type countingReader struct {
	r   io.Reader
	bar *bar
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.bar.add(n)
	return n, err
}

type countingWriter struct {
	w   io.Writer
	bar *bar
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.bar.add(n)
	return n, err
}
