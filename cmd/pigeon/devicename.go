package main

import (
	"os"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
)

// deviceNameFile holds this device's name, as given to "pigeon init
// -name" or "pigeon link -name". The name is also stored (sealed) on the
// relay, where the account's other devices read it; the copy here names
// devices made before RegisterRequest carried a name.
const deviceNameFile = "device-name"

// localName returns this device's name, "" if it has none.
func (c *cli) localName() string {
	b, err := os.ReadFile(filepath.Join(c.dir, deviceNameFile))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// saveLocalName keeps this device's name ("" keeps none).
func (c *cli) saveLocalName(name string) error {
	if name == "" {
		return nil
	}
	return writeAtomic(filepath.Join(c.dir, deviceNameFile), []byte(name+"\n"))
}

// checkDeviceName refuses a device name that is too long or would do
// things to a terminal.
func checkDeviceName(name string) error {
	if len(name) > e2e.MaxDeviceName || !utf8.ValidString(name) || strings.ContainsFunc(name, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return usagef("", "a device name is at most %d bytes of printable characters", e2e.MaxDeviceName)
	}
	return nil
}
