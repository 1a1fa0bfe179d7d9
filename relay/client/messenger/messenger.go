package messenger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
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

	dialMu  sync.Mutex                       // guards dialing
	dialing map[*int]context.CancelCauseFunc // FailFast: the calls waiting for a connection
	recv    receiver                         // state of the receive loop (Run)
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
	if cfg.FailFast {
		m.cl.Retrying = m.giveUp
	}
	m.cl.Reconnected = m.reconnected
	return m, nil
}

// Register creates a new account whose first device lives in dir (which
// must not hold one) and opens it. It makes the account's access key
// for sealed sends and sets its verifier on the relay.
func Register(ctx context.Context, dir string, cfg *Config) (*Messenger, error) {
	if cfg == nil || cfg.RelayAddr == "" {
		return nil, errors.New("messenger: no relay address in the config")
	}
	d, reg, err := e2e.Create(dir, cfg.preKeys())
	if err != nil {
		return nil, fmt.Errorf("messenger: %w", err)
	}
	conn, err := client.Dial(ctx, cfg.options())
	if err == nil {
		defer conn.Close()
		var acct *client.Account
		if acct, err = conn.Register(ctx, reg); err == nil {
			err = d.Registered(acct.AccountID, acct.DeviceID)
		}
	}
	if err != nil {
		undoCreate(dir)
		return nil, fmt.Errorf("messenger: register: %w", err)
	}
	s := newDirStore(d)
	if err := noteRotation(s, time.Now()); err != nil {
		return nil, err
	}
	m, err := OpenStore(s, cfg, nil)
	if err != nil {
		return nil, err
	}
	// Without an access key contacts send identified; the account works
	// all the same, so a failure here does not undo the registration.
	if err := m.setUpAccessKey(ctx); err != nil {
		m.log.Warn("no access key: contacts will send identified", "err", err)
	}
	return m, nil
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
		conn, err := m.connect(ctx)
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

// dial opens a connection that does not authenticate, for sealed sends.
func (m *Messenger) dial(ctx context.Context) (*client.Conn, error) {
	conn, err := client.Dial(ctx, m.cfg.options())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	return conn, nil
}

// connect returns the live connection, dialing as needed. With
// Config.FailFast, a failed dial ends the wait (giveUp) instead of the
// client's retries.
func (m *Messenger) connect(ctx context.Context) (*client.Conn, error) {
	if !m.cfg.FailFast {
		return m.cl.Conn(ctx)
	}
	cctx, cancel := context.WithCancelCause(ctx)
	key := new(int)
	m.dialMu.Lock()
	if m.dialing == nil {
		m.dialing = map[*int]context.CancelCauseFunc{}
	}
	m.dialing[key] = cancel
	m.dialMu.Unlock()
	defer func() {
		m.dialMu.Lock()
		delete(m.dialing, key)
		m.dialMu.Unlock()
		cancel(nil)
	}()
	conn, err := m.cl.Conn(cctx)
	if cause := context.Cause(cctx); err != nil && errors.Is(cause, ErrUnreachable) && ctx.Err() == nil {
		return nil, cause
	}
	return conn, err
}

// giveUp is the client's Retrying with Config.FailFast: the calls
// waiting for a connection fail with the dial's error.
func (m *Messenger) giveUp(err error, _ time.Duration) {
	m.log.Info("relay unreachable", "err", err)
	cause := fmt.Errorf("%w: %w", ErrUnreachable, err)
	m.dialMu.Lock()
	defer m.dialMu.Unlock()
	for _, cancel := range m.dialing {
		cancel(cause)
	}
}

func (m *Messenger) retrying(err error, wait time.Duration) {
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
