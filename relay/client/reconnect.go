package client

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/pigeonhole/pigeonhole/spec"
)

// Client keeps an authenticated connection to a relay, reconnecting with
// exponential backoff (with jitter) when it drops. Envelopes not acked
// before a drop are delivered again after the reconnect.
type Client struct {
	opts   Options
	creds  Credentials
	window int

	// MinBackoff and MaxBackoff bound the wait between reconnection
	// attempts. Zero means 100 ms and 30 s.
	MinBackoff, MaxBackoff time.Duration

	// Retrying, if set, is called before each wait between reconnection
	// attempts, with the failed attempt's error and the wait, so an app
	// can say "disconnected, retrying in 4s". Reconnected, if set, is
	// called when a connection is made after an attempt failed. Both run
	// on the goroutine that dials; set them before the first call.
	Retrying    func(err error, wait time.Duration)
	Reconnected func()

	dialMu sync.Mutex // held by the one caller dialing
	failed bool       // the last attempt failed (guarded by dialMu)
	mu     sync.Mutex // guards the fields below
	conn   *Conn
	closed bool
	done   chan struct{} // closed by Close
}

// ErrClosed is returned by a Client's methods after Close.
var ErrClosed = errors.New("client closed")

// New returns a Client for one device. Nothing is dialed until the first
// call that needs the relay.
func New(opts *Options, creds *Credentials, window int) *Client {
	return &Client{opts: *opts, creds: *creds, window: window}
}

// permanent reports whether retrying err cannot help.
func permanent(err error) bool {
	if errors.Is(err, ErrFingerprint) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var e *Error
	if errors.As(err, &e) {
		switch spec.Code(e.Code) {
		case spec.CodeShuttingDown, spec.CodeInternal, spec.CodeRateLimited:
			return false
		}
		return true
	}
	return false
}

// Conn returns the live connection, dialing and authenticating (with
// backoff) when there is none. Only one caller dials at a time; Close
// interrupts a dial in progress.
func (c *Client) Conn(ctx context.Context) (*Conn, error) {
	c.dialMu.Lock()
	defer c.dialMu.Unlock()
	if conn, err := c.current(); conn != nil || err != nil {
		return conn, err
	}
	lo, hi := c.MinBackoff, c.MaxBackoff
	if lo <= 0 {
		lo = 100 * time.Millisecond
	}
	if hi <= 0 {
		hi = 30 * time.Second
	}
	wait := lo
	for {
		conn, err := c.dial(ctx)
		if err == nil {
			c.mu.Lock()
			if c.closed {
				c.mu.Unlock()
				conn.Close()
				return nil, ErrClosed
			}
			c.conn = conn
			c.mu.Unlock()
			if c.failed && c.Reconnected != nil {
				c.Reconnected()
			}
			c.failed = false
			return conn, nil
		}
		if permanent(err) {
			return nil, err
		}
		c.failed = true
		pause := wait/2 + rand.N(wait/2+1)
		if c.Retrying != nil {
			c.Retrying(err, pause)
		}
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-c.closing():
			t.Stop()
			return nil, ErrClosed
		}
		wait = min(2*wait, hi)
	}
}

// Current returns the live connection without dialing, nil if there is
// none (or the Client is closed).
func (c *Client) Current() *Conn {
	conn, _ := c.current()
	return conn
}

// current returns the live connection, nil if there is none, or
// ErrClosed.
func (c *Client) current() (*Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if c.conn != nil {
		select {
		case <-c.conn.Done():
			c.conn.Close()
			c.conn = nil
		default:
			return c.conn, nil
		}
	}
	return nil, nil
}

// closing returns a channel closed by Close.
func (c *Client) closing() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
	}
	return c.done
}

func (c *Client) dial(ctx context.Context) (*Conn, error) {
	conn, err := Dial(ctx, &c.opts)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Authenticate(ctx, &c.creds, c.window); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// drop forgets conn if it is still the current connection.
func (c *Client) drop(conn *Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == conn {
		c.conn.Close()
		c.conn = nil
	}
}

// Next returns the next session event, reconnecting as needed.
func (c *Client) Next(ctx context.Context) (*Event, error) {
	for {
		conn, err := c.Conn(ctx)
		if err != nil {
			return nil, err
		}
		ev, err := conn.Next(ctx)
		if err == nil {
			return ev, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if permanent(err) {
			return nil, err
		}
		c.drop(conn)
	}
}

// Ack acks envelopes on the current connection. Acks for envelopes of a
// connection that has since dropped are pointless: those come again.
func (c *Client) Ack(seqs ...uint64) error {
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn == nil {
		return ErrNoSession
	}
	return conn.Ack(seqs...)
}

// Send sends m, retrying on a fresh connection when the connection drops;
// the ClientMessageID makes a retry land once.
func (c *Client) Send(ctx context.Context, m *Message) (*SendResult, error) {
	for {
		conn, err := c.Conn(ctx)
		if err != nil {
			return nil, err
		}
		res, err := conn.Send(ctx, m)
		if err == nil || permanent(err) || ctx.Err() != nil {
			return res, err
		}
		c.drop(conn)
	}
}

// FetchKeys fetches an account's bundles, reconnecting as needed.
func (c *Client) FetchKeys(ctx context.Context, account []byte) (*Keys, error) {
	for {
		conn, err := c.Conn(ctx)
		if err != nil {
			return nil, err
		}
		k, err := conn.FetchKeys(ctx, account)
		if err == nil || permanent(err) || ctx.Err() != nil {
			return k, err
		}
		c.drop(conn)
	}
}

// Close closes the connection; the Client cannot be used afterwards.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if c.done == nil {
		c.done = make(chan struct{})
	}
	close(c.done)
	if c.conn == nil {
		return nil
	}
	err := c.conn.Close()
	c.conn = nil
	return err
}
