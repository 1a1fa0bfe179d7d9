package main

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// maxTextBytes is the longest text a message carries. The relay takes
// 256 KiB of ciphertext per device message (-max-envelope-bytes); what a
// text costs on top (the content's framing, padding to 160 bytes, the
// Signal message and its first-message header) stays well under the
// 12 KiB kept free here. An argument is capped lower by the kernel
// (128 KiB on Linux): longer texts come on stdin.
const maxTextBytes = 250_000

// readText reads a message's text from stdin, without the one newline
// that ends it when it comes from echo or a file.
func (c *cli) readText() (string, error) {
	b, err := io.ReadAll(io.LimitReader(c.stdin, maxTextBytes+2))
	if err != nil {
		return "", fmt.Errorf("read the text from stdin: %w", err)
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if len(s) > maxTextBytes {
		return "", failf("send a longer text as a file: pigeon send-file ACCOUNT PATH", "a text is at most %d bytes; stdin has more", maxTextBytes)
	}
	return s, nil
}

// checkText refuses what is no message: nothing, or more than fits.
func checkText(s string) error {
	switch {
	case strings.TrimSpace(s) == "":
		return usagef(`pigeon send ACCOUNT|GROUP "TEXT"`, "the text is empty")
	case len(s) > maxTextBytes:
		return failf("send a longer text as a file: pigeon send-file ACCOUNT PATH", "a text is at most %d bytes, this one has %d", maxTextBytes, len(s))
	case !utf8.ValidString(s):
		return failf("send other data as a file: pigeon send-file ACCOUNT PATH", "the text is not valid UTF-8")
	}
	return nil
}
