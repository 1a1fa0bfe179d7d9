package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/relaytest"
	"github.com/pigeonhole/pigeonhole/spec"
)

// device is a registered simulated device.
type device struct {
	Account []byte `json:"account"`
	Device  uint32 `json:"device"`
	AuthKey []byte `json:"auth_key"`
}

func (d *device) creds() *client.Credentials {
	return &client.Credentials{AccountID: d.Account, DeviceID: d.Device, AuthKey: d.AuthKey}
}

// registrar registers simulated devices. They share one Signal identity
// and signed prekey (the relay verifies the signature, not uniqueness) and
// carry no one-time prekeys: the load is on queues, not on key fetches.
type registrar struct {
	opts *client.Options
	base client.Registration
	log  func(format string, args ...any)
}

func newRegistrar(opts *client.Options, log func(string, ...any)) (*registrar, error) {
	// relaytest also silences libsignal, which prints to stdout.
	base, _, err := relaytest.NewRegistration(0)
	if err != nil {
		return nil, err
	}
	return &registrar{opts: opts, log: log, base: *base}, nil
}

// devices returns n registered devices: from the state file when it holds
// enough (from an earlier run against the same relay data), else newly
// registered ones appended to it.
func (r *registrar) devices(ctx context.Context, n int, stateFile string) ([]*device, error) {
	have, err := loadState(stateFile)
	if err != nil {
		return nil, err
	}
	if len(have) >= n {
		return have[:n], nil
	}
	fresh, err := r.register(ctx, n-len(have))
	if err != nil {
		return nil, err
	}
	if err := appendState(stateFile, fresh); err != nil {
		return nil, err
	}
	return append(have, fresh...), nil
}

// register registers n devices, 64 at a time over 8 connections.
func (r *registrar) register(ctx context.Context, n int) ([]*device, error) {
	const conns, perConn = 8, 8
	out := make([]*device, n)
	var next, done atomic.Int64
	var firstErr error
	var once sync.Once
	fail := func(err error) { once.Do(func() { firstErr = err }) }
	start := time.Now()
	stop := r.progress(ctx, "registered", &done, int64(n))
	defer stop()
	var wg sync.WaitGroup
	for range conns {
		conn, err := client.Dial(ctx, r.opts)
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		for range perConn {
			wg.Go(func() {
				for {
					i := next.Add(1) - 1
					if i >= int64(n) || ctx.Err() != nil {
						return
					}
					d, err := r.one(ctx, conn)
					if err != nil {
						fail(err)
						return
					}
					out[i] = d
					done.Add(1)
				}
			})
		}
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.log("registered %d devices in %.1fs (%.0f/s)", n, time.Since(start).Seconds(), float64(n)/time.Since(start).Seconds())
	return out, nil
}

func (r *registrar) one(ctx context.Context, conn *client.Conn) (*device, error) {
	_, auth, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	reg := r.base
	reg.AuthKey = auth
	acct, err := conn.Register(ctx, &reg)
	if spec.Code(client.ErrorCode(err)) == spec.CodeRateLimited {
		return nil, errors.New("the relay rate-limits registrations: start it with -register-burst 1000000 -new-account-burst 1000000 for a benchmark")
	}
	if err != nil {
		return nil, err
	}
	return &device{Account: acct.AccountID, Device: acct.DeviceID, AuthKey: auth}, nil
}

// progress prints "what done/total" every second until stopped.
func (r *registrar) progress(ctx context.Context, what string, done *atomic.Int64, total int64) func() {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				r.log("%s %d/%d", what, done.Load(), total)
			}
		}
	}()
	return cancel
}

// loadState reads the devices an earlier run registered (JSON lines).
func loadState(path string) ([]*device, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []*device
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var d device
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil || len(d.Account) != 16 || len(d.AuthKey) != ed25519.PrivateKeySize {
			return nil, fmt.Errorf("%s: line %d is not a device", path, len(out)+1)
		}
		out = append(out, &d)
	}
	return out, sc.Err()
}

// appendState adds devices to the state file (0600: it holds auth keys).
func appendState(path string, devs []*device) error {
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, d := range devs {
		b, _ := json.Marshal(d)
		w.Write(b)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func shortID(d *device) string { return hex.EncodeToString(d.Account)[:8] }
