// Command pigeonbench is Pigeonhole's load generator: it drives a relay
// over real QUIC from many simulated devices with the real client package
// and reports what an operator sizes a relay by.
//
//	pigeonbench -ready FILE [flags]                 a load run (default)
//	pigeonbench -ready FILE -mode idle -idle 10000  hold idle connections
//
// Start the relay with a high registration limit and metrics, for
// example:
//
//	pigeonhole serve -data /tmp/bench -listen 127.0.0.1:4433 -metrics 127.0.0.1:9464 \
//	    -register-burst 1000000 -new-account-burst 1000000 -send-burst 1000000000 -ready-file /tmp/bench.ready
//
// A load run registers -devices recipients and -senders senders (or
// reuses them from -state), connects -connected of the recipients, and
// sends -size-byte ciphertexts from the senders, each keeping at most
// -window messages in flight (sent but not yet delivered), at -rate
// messages/s (latency measured from the scheduled send time, so a relay
// that falls behind is charged for it) or as fast as the windows allow.
// -fanout G makes every send a multi_send to G devices. -offline-share
// sends a share of messages to devices that are not connected; at the end
// up to -drain-devices of them connect and their time to drain is
// reported. It prints progress every second and a table at the end (and
// JSON with -json), and stops at -duration, earlier at -count accepted
// sends, or on Ctrl-C. A refused send is counted by its error code and
// its sender backs off for 10 ms.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pigeonhole/pigeonhole/relay/client"
)

func main() {
	os.Exit(bench(os.Args[1:], os.Stdout, os.Stderr))
}

func bench(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pigeonbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		ready       = fs.String("ready", "", "the relay's -ready-file: its address, fingerprint and metrics address")
		addr        = fs.String("relay", "", "relay `host:port` (instead of -ready)")
		fp          = fs.String("fingerprint", "", "relay certificate `fingerprint` (instead of -ready)")
		metricsAddr = fs.String("metrics", "", "relay metrics `host:port` (instead of -ready)")
		mode        = fs.String("mode", "load", "`load` or idle")
		stateFile   = fs.String("state", "", "`file` keeping registered devices between runs against the same relay data (0600: it holds auth keys)")
		jsonOut     = fs.Bool("json", false, "print the report as JSON on stdout instead of a table")
		cfg         = loadConfig{}
		idle        = fs.Int("idle", 1000, "idle connections to hold (-mode idle)")
		hold        = fs.Duration("hold", 20*time.Second, "how long to hold them (-mode idle)")
		keepAlive   = fs.Duration("keepalive", 20*time.Second, "QUIC keep-alive period of the simulated devices")
		idleAuth    = fs.Bool("idle-auth", true, "authenticate the idle connections (false: bare QUIC connections, for comparison)")
		recvReady   = fs.String("recv-ready", "", "a second relay's -ready-file: connected recipients and drained devices use that relay, senders the first (cluster mode: cross-relay delivery)")
		sockets     = fs.Int("sockets", 64, "local UDP sockets (QUIC transports) the idle connections share (-mode idle; 1: every connection on one socket)")
	)
	fs.IntVar(&cfg.Devices, "devices", 1000, "registered recipient devices")
	fs.IntVar(&cfg.Connected, "connected", 100, "recipients connected and receiving (the rest are offline)")
	fs.IntVar(&cfg.Senders, "senders", 16, "concurrent senders, each on its own connection")
	fs.Float64Var(&cfg.Rate, "rate", 0, "messages/s in all (0: as fast as the windows allow)")
	fs.IntVar(&cfg.Window, "window", 32, "messages in flight per sender (sent, not yet delivered)")
	fs.IntVar(&cfg.Size, "size", 256, "ciphertext `bytes` per device")
	fs.IntVar(&cfg.Fanout, "fanout", 1, "devices per send (a multi_send above 1)")
	fs.Float64Var(&cfg.OfflineShare, "offline-share", 0, "share of sends to offline devices (0..1)")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long to send (at most, with -count)")
	fs.Int64Var(&cfg.Count, "count", 0, "stop after this many accepted sends, or at -duration if that comes first (0: run for -duration)")
	fs.IntVar(&cfg.DrainDevices, "drain-devices", 100, "offline devices that connect at the end to time their drain")
	fs.IntVar(&cfg.RecvWindow, "recv-window", 256, "receive window of connected devices")
	fs.BoolVar(&cfg.BatchAcks, "batch-acks", false, "ack from a second goroutine per device, so acks that pile up go out in one frame (default: one ack frame per envelope, as pigeon does)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := func(format string, args ...any) { fmt.Fprintf(stderr, "pigeonbench: "+format+"\n", args...) }
	opts, metrics, err := relayOptions(*ready, *addr, *fp, *metricsAddr)
	if err == nil {
		err = cfg.check()
	}
	if err != nil {
		log("%v", err)
		return 2
	}
	opts.KeepAlive = *keepAlive
	recvOpts := opts
	if *recvReady != "" {
		if recvOpts, _, err = relayOptions(*recvReady, "", "", ""); err != nil {
			log("-recv-ready: %v", err)
			return 2
		}
		recvOpts.KeepAlive = *keepAlive
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	reg, err := newRegistrar(opts, log)
	if err != nil {
		log("%v", err)
		return 1
	}
	var rep *report
	switch *mode {
	case "load":
		rep, err = runLoad(ctx, opts, recvOpts, cfg, reg, *stateFile, log)
	case "idle":
		rep, err = runIdle(ctx, opts, idleConfig{n: *idle, hold: *hold, window: cfg.RecvWindow, auth: *idleAuth, sockets: *sockets}, metrics, reg, *stateFile, log)
	default:
		err = fmt.Errorf("unknown -mode %q (load or idle)", *mode)
	}
	if err != nil {
		if ctx.Err() != nil {
			log("interrupted")
		} else {
			log("%v", err)
		}
		return 1
	}
	if *jsonOut {
		if err := rep.writeJSON(stdout); err != nil {
			log("%v", err)
			return 1
		}
	} else {
		rep.print(stdout)
	}
	return 0
}

// maxFanout is the relay's most device messages in one send
// (MaxMultiDevices), and maxFrame its request frame limit.
const (
	maxFanout = 1000
	maxFrame  = 4 << 20
)

func (c *loadConfig) check() error {
	switch {
	case c.Devices < 1 || c.Connected < 0 || c.Connected > c.Devices:
		return errors.New("-connected must be between 0 and -devices (at least 1)")
	case c.Senders < 1 || c.Window < 1:
		return errors.New("-senders and -window must be at least 1")
	case c.Size < payloadHeader:
		return fmt.Errorf("-size must be at least %d bytes", payloadHeader)
	case c.Fanout < 1 || c.Fanout > maxFanout:
		return fmt.Errorf("-fanout is 1 to %d (the relay's most devices per send)", maxFanout)
	case c.OfflineShare < 1 && c.Fanout > c.Connected, c.OfflineShare > 0 && c.Fanout > c.Devices-c.Connected:
		return errors.New("-fanout is more than the connected (or offline) devices a send can go to")
	case c.Fanout*(c.Size+64) > maxFrame:
		return fmt.Errorf("-fanout times -size must stay under the relay's %d-byte request limit", maxFrame)
	case c.Rate < 0 || c.Count < 0 || c.RecvWindow < 1 || c.Duration <= 0:
		return errors.New("-rate and -count cannot be negative, -recv-window and -duration must be above 0")
	case c.OfflineShare < 0 || c.OfflineShare > 1:
		return errors.New("-offline-share is between 0 and 1")
	case c.Connected == 0 && c.OfflineShare == 0:
		return errors.New("with -connected 0, every send goes to offline devices: set -offline-share 1")
	case c.OfflineShare > 0 && c.Devices == c.Connected:
		return errors.New("-offline-share needs offline devices: -devices above -connected")
	}
	return nil
}

// relayOptions reads where the relay is from its ready file or the flags.
func relayOptions(ready, addr, fp, metrics string) (*client.Options, string, error) {
	if ready != "" {
		b, err := os.ReadFile(ready)
		if err != nil {
			return nil, "", err
		}
		var r struct{ Addr, Fingerprint, Metrics string }
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, "", fmt.Errorf("%s: %w", ready, err)
		}
		addr, fp = r.Addr, r.Fingerprint
		if metrics == "" {
			metrics = r.Metrics
		}
	}
	if addr == "" || fp == "" {
		return nil, "", errors.New("say where the relay is: -ready FILE, or -relay and -fingerprint")
	}
	return &client.Options{Addr: addr, Fingerprint: fp}, metrics, nil
}
