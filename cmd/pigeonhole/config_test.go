package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigPrecedence: a flag beats the environment, which beats the
// config file, which beats the default.
func TestConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "relay.conf")
	conf := "# comment\nlisten = 127.0.0.1:1\nmax-window = 7\nmax-send-devices = 9\n"
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PIGEONHOLE_MAX_WINDOW", "8")
	t.Setenv("PIGEONHOLE_LISTEN", "127.0.0.1:2")
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	listen := fs.String("listen", "default", "")
	window := fs.Int("max-window", 1, "")
	devices := fs.Int("max-send-devices", 1, "")
	envelope := fs.Int("max-envelope-bytes", 5, "")
	if err := fs.Parse([]string{"-listen", "127.0.0.1:3"}); err != nil {
		t.Fatal(err)
	}
	if err := applyConfig(fs, file); err != nil {
		t.Fatal(err)
	}
	if *listen != "127.0.0.1:3" || *window != 8 || *devices != 9 || *envelope != 5 {
		t.Fatalf("listen %q window %d devices %d envelope %d", *listen, *window, *devices, *envelope)
	}
}

func TestConfigFileErrors(t *testing.T) {
	dir := t.TempDir()
	for name, conf := range map[string]string{
		"unknown setting": "no-such-flag = 1\n",
		"no equals sign":  "max-window 7\n",
		"bad value":       "max-window = many\n",
	} {
		file := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.Int("max-window", 1, "")
		if err := applyConfig(fs, file); err == nil || !strings.Contains(err.Error(), file) {
			t.Errorf("%s: %v, want an error naming the file", name, err)
		}
	}
}

// TestMultiSendLimitFlag: the multi_send cap is an operator's setting.
func TestMultiSendLimitFlag(t *testing.T) {
	var f serveFlags
	fs := serveFlagSet(&f)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if f.cfg.MaxMultiDevices != 1000 {
		t.Fatalf("default -max-multi-devices = %d, want 1000", f.cfg.MaxMultiDevices)
	}
	f = serveFlags{}
	fs = serveFlagSet(&f)
	if err := fs.Parse([]string{"-max-multi-devices", "600"}); err != nil {
		t.Fatal(err)
	}
	if f.cfg.MaxMultiDevices != 600 {
		t.Fatalf("-max-multi-devices 600 gave %d", f.cfg.MaxMultiDevices)
	}
}
