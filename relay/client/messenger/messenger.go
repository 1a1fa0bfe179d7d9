package messenger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pigeonhole/pigeonhole/relay/client"
	"github.com/pigeonhole/pigeonhole/relay/client/e2e"
)

// Messenger is one registered device talking to its relay: it sends
// (Send, SendGroup, receipts, typing) and receives (Run) over one
// connection that it keeps up, reconnecting with backoff. One Messenger
// should own a store at a time. Its methods may be called from several
// goroutines.
type Messenger struct {
	store Store
	cfg   Config
	log   *slog.Logger
	cl    *client.Client

	groupMu sync.Mutex  // serializes read-modify-write of group records
	groups  GroupStates // nil: group records in the store (UseGroupStates)
	trustMu sync.Mutex  // serializes read-modify-write of verification records
	trusts  TrustStates // nil: verification records in the store (UseTrustStates)
	recv    receiver    // state of the receive loop (Run)
	dialing dialers     // calls waiting for a connection (Config.FailFast)
}

// Open opens the registered device in dir (e2e's directory layout,
// which cmd/pigeon uses too) for the relay in cfg. Logs are discarded;
// OpenStore takes a logger.
func Open(dir string, cfg *Config) (*Messenger, error) {
	s, err := OpenDir(dir)
	if err != nil {
		return nil, err
	}
	return OpenStore(s, cfg, nil)
}

// OpenStore opens the registered device in s for the relay in cfg; log
// (nil: discard) gets operational messages, never keys, plaintext or
// full account ids. Nothing is dialed until the first call that needs
// the relay.
func OpenStore(s Store, cfg *Config, log *slog.Logger) (*Messenger, error) {
	if cfg == nil || cfg.RelayAddr == "" {
		return nil, errors.New("messenger: no relay address in the config")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	creds, err := s.Credentials()
	if err != nil || s.DeviceID() == 0 {
		return nil, ErrNotRegistered
	}
	m := &Messenger{store: s, cfg: *cfg, log: log}
	m.cl = client.New(cfg.options(), creds, cfg.window())
	m.cl.MinBackoff, m.cl.MaxBackoff = cfg.backoff()
	m.cl.Retrying = m.retrying
	m.cl.Reconnected = m.reconnected
	return m, nil
}

// OpenStorage opens the registered device whose state is in kv (an
// app's own database; see KV) for the relay in cfg, with log as in
// OpenStore.
func OpenStorage(kv KV, cfg *Config, log *slog.Logger) (*Messenger, error) {
	s, err := OpenKV(kv)
	if err != nil {
		return nil, err
	}
	return OpenStore(s, cfg, log)
}

// Register creates a new account whose first device lives in dir (which
// must not hold one), listed as name to the account's devices ("": no
// name; cut to e2e.MaxDeviceName bytes), and opens it. It then uploads
// the device's first one-time KEM prekeys, which are too large for the
// unauthenticated registration (protocol.md, "Limits"); if that fails,
// it returns the Messenger with an error wrapping ErrPreKeysPending. It
// makes the account's access key for sealed sends and sets its verifier
// on the relay; if that fails, the error (with the Messenger) wraps
// ErrAccessKeyPending.
// When the relay cannot be reached the error is an *UnreachableError.
func Register(ctx context.Context, dir string, cfg *Config, name string) (*Messenger, error) {
	return registerIn(ctx, dirHome(dir), cfg, name)
}

// RegisterStorage is Register for a device whose state is kept in kv
// (which must not hold a device).
func RegisterStorage(ctx context.Context, kv KV, cfg *Config, name string) (*Messenger, error) {
	return registerIn(ctx, kvHome(kv), cfg, name)
}

// registerIn creates a device in h, registers it as a new account's
// first device, and opens it; it removes the device again if the relay
// did not take it.
func registerIn(ctx context.Context, h home, cfg *Config, name string) (*Messenger, error) {
	if cfg == nil || cfg.RelayAddr == "" {
		return nil, errors.New("messenger: no relay address in the config")
	}
	d, reg, err := h.create(cfg.preKeys())
	if err != nil {
		return nil, fmt.Errorf("messenger: %w", err)
	}
	if name != "" {
		reg.EncryptedName, err = d.SealDeviceName(DeviceName(name))
	}
	var conn *client.Conn
	if err == nil {
		if conn, err = client.Dial(ctx, cfg.options()); err != nil {
			h.undo()
			return nil, &UnreachableError{Err: err}
		}
		defer conn.Close()
		var acct *client.Account
		if acct, err = conn.Register(ctx, reg); err == nil {
			err = d.Registered(acct.AccountID, acct.DeviceID)
		}
	}
	if err != nil {
		h.undo()
		return nil, fmt.Errorf("messenger: register: %w", err)
	}
	m, err := openNew(ctx, h.wrap(d), cfg)
	if m == nil {
		return nil, err
	}
	// Without an access key contacts send identified; the account works
	// all the same, so a failure here does not undo the registration.
	if aerr := m.setUpAccessKey(ctx); aerr != nil {
		m.log.Warn("no access key: contacts will send identified", "err", aerr)
		err = errors.Join(err, fmt.Errorf("%w: %w", ErrAccessKeyPending, aerr))
	}
	return m, err
}

// openNew opens a device that has just joined its account (Register,
// Link.Wait), after uploading its first one-time KEM prekeys on a
// send-only connection of their own: the device is not receiving yet,
// so the relay must not count it connected.
func openNew(ctx context.Context, s Store, cfg *Config) (*Messenger, error) {
	up := *cfg
	up.SendOnly = true
	first, err := OpenStore(s, &up, nil)
	if err != nil {
		return nil, err
	}
	upErr := first.refillKEMs(ctx, 0)
	first.Close()
	m, err := OpenStore(s, cfg, nil)
	if err != nil {
		return nil, err
	}
	if upErr != nil {
		return m, fmt.Errorf("%w: %w", ErrPreKeysPending, upErr)
	}
	return m, nil
}

// DeviceName is name as Register and StartLink keep it: cut to
// e2e.MaxDeviceName bytes on a rune boundary, invalid UTF-8 dropped.
func DeviceName(name string) string {
	for len(name) > e2e.MaxDeviceName {
		name = name[:len(name)-1]
	}
	return strings.ToValidUTF8(name, "")
}

// undoCreate removes a device created in dir that the relay did not
// take, so dir can be used again.
func undoCreate(dir string) {
	for _, n := range []string{"device.json", "prekeys", "kemprekeys", "signed", "lock"} {
		_ = os.RemoveAll(filepath.Join(dir, n))
	}
}

// AccountID is this device's account id (16 bytes).
func (m *Messenger) AccountID() []byte { return m.store.AccountID() }

// DeviceID is this device's id in its account (1 for the first).
func (m *Messenger) DeviceID() int64 { return int64(m.store.DeviceID()) }

// Close ends the connection; Run returns and the Messenger cannot be
// used afterwards. It does not wait for acks to become durable: envelopes
// whose ack was lost come again next time and are recognized as
// duplicates.
func (m *Messenger) Close() error { return m.cl.Close() }

// conn runs f on the live connection, dialing as needed; when the
// connection dies under f, it runs f again on a new one (f must be safe
// to repeat: sends carry their client message id).
func (m *Messenger) conn(ctx context.Context, f func(*client.Conn) error) error {
	for {
		conn, err := m.live(ctx)
		if errors.Is(err, client.ErrClosed) {
			return ErrClosed
		}
		if err != nil {
			return err
		}
		err = f(conn)
		if err == nil || ctx.Err() != nil || client.ErrorCode(err) != 0 {
			return err
		}
		select {
		case <-conn.Done():
			continue // dropped under f: again on a new connection
		default:
			return err
		}
	}
}

// dial opens a connection that does not authenticate, for sealed sends
// and the access key's setup.
func (m *Messenger) dial(ctx context.Context) (*client.Conn, error) {
	conn, err := client.Dial(ctx, m.cfg.options())
	if err != nil {
		return nil, &UnreachableError{Err: err}
	}
	return conn, nil
}

// live is the live connection (relay/client.Client.Conn). With
// Config.FailFast, the first failed attempt ends the call with an
// *UnreachableError, as does a relay that is not the one pinned.
func (m *Messenger) live(ctx context.Context) (*client.Conn, error) {
	if !m.cfg.FailFast {
		return m.cl.Conn(ctx)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer m.dialing.add(cancel)()
	conn, err := m.cl.Conn(ctx)
	var ue *UnreachableError
	switch {
	case errors.As(context.Cause(ctx), &ue):
		return nil, ue
	case errors.Is(err, client.ErrFingerprint):
		return nil, &UnreachableError{Err: err}
	}
	return conn, err
}

// dialers are the calls of a FailFast Messenger waiting for a
// connection; a failed attempt ends them all.
type dialers struct {
	mu      sync.Mutex
	waiting map[*context.CancelCauseFunc]bool
}

// add registers cancel until the returned func is called.
func (d *dialers) add(cancel context.CancelCauseFunc) func() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.waiting == nil {
		d.waiting = map[*context.CancelCauseFunc]bool{}
	}
	d.waiting[&cancel] = true
	return func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		delete(d.waiting, &cancel)
	}
}

// fail ends every waiting call with err.
func (d *dialers) fail(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for cancel := range d.waiting {
		(*cancel)(&UnreachableError{Err: err})
	}
}

func (m *Messenger) retrying(err error, wait time.Duration) {
	if m.cfg.FailFast {
		m.dialing.fail(err)
		return
	}
	m.log.Info("relay unreachable; retrying", "err", err, "wait", wait)
	if h := m.recv.current(); h != nil {
		h.OnConnection(false, err.Error(), wait.Milliseconds())
	}
}

func (m *Messenger) reconnected() {
	m.log.Info("reconnected to the relay")
	if h := m.recv.current(); h != nil {
		h.OnConnection(true, "", 0)
	}
}
