package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/pigeonhole/pigeonhole/spec"
)

// Options say how to reach a relay.
type Options struct {
	// Addr is the relay's host:port (UDP).
	Addr string
	// Fingerprint pins the relay certificate: the lowercase hex SHA-256 of
	// its DER encoding, as `pigeonhole serve` prints it. Empty means
	// verify the certificate against the system roots and ServerName.
	Fingerprint string
	// ServerName for TLS; empty means the host part of Addr.
	ServerName string
	// KeepAlive is the QUIC keep-alive period. Zero means 20 s. It must
	// stay under the relay's idle timeout (60 s by default), which closes
	// a connection silent for longer.
	KeepAlive time.Duration
	// Transport, if set, carries the connection on that shared local UDP
	// socket instead of a new one (a load generator holding thousands of
	// connections); Close then leaves it open. Nil: a socket of its own.
	Transport *quic.Transport
}

// Conn is one QUIC connection to a relay. Requests may be made from
// several goroutines at once; the session calls (Next, Ack, Finish) belong
// to one reader.
type Conn struct {
	qc       *quic.Conn
	exporter []byte
	opts     Options

	mu         sync.Mutex
	transports []*quic.Transport // every local socket of its own used; the last is current
	shared     *quic.Transport   // Options.Transport, not closed here

	sess  *sessionStream
	blobs blobClients
	mux   requestMux
}

// Dial connects to the relay and completes the TLS 1.3 handshake.
func Dial(ctx context.Context, opts *Options) (*Conn, error) {
	if opts == nil || opts.Addr == "" {
		return nil, errors.New("dial: no relay address")
	}
	raddr, err := net.ResolveUDPAddr("udp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("dial: resolve %s: %w", opts.Addr, err)
	}
	tr, owned := opts.Transport, []*quic.Transport(nil)
	if tr == nil {
		if tr, err = newTransport(raddr); err != nil {
			return nil, err
		}
		owned = []*quic.Transport{tr}
	}
	closeOwned := func() {
		for _, t := range owned {
			t.Close()
			t.Conn.Close() // Transport.Close leaves a socket it was given open
		}
	}
	tlsConf, err := clientTLS(opts)
	if err != nil {
		closeOwned()
		return nil, err
	}
	keepAlive := opts.KeepAlive
	if keepAlive <= 0 {
		keepAlive = 20 * time.Second
	}
	qc, err := tr.Dial(ctx, raddr, tlsConf, &quic.Config{
		KeepAlivePeriod: keepAlive,
		// Three keep-alives per idle timeout, as the relay expects (the
		// lower of the two sides' timeouts applies; quic-go's own default
		// of 30 s would cut a longer keep-alive period short).
		MaxIdleTimeout:        3 * keepAlive,
		MaxIncomingStreams:    -1,
		MaxIncomingUniStreams: -1,
	})
	if err != nil {
		closeOwned()
		if strings.Contains(err.Error(), ErrFingerprint.Error()) {
			return nil, fmt.Errorf("dial %s: %w", opts.Addr, ErrFingerprint)
		}
		return nil, fmt.Errorf("dial %s: %w", opts.Addr, err)
	}
	cs := qc.ConnectionState().TLS
	exp, err := cs.ExportKeyingMaterial(spec.ExporterLabel, nil, spec.ExporterLength)
	if err != nil {
		_ = qc.CloseWithError(spec.CloseProtocol, "")
		closeOwned()
		return nil, fmt.Errorf("dial: tls exporter: %w", err)
	}
	c := &Conn{qc: qc, exporter: exp, opts: *opts, transports: owned, shared: opts.Transport}
	c.mux.slots = make(chan struct{}, spec.MaxRequestsInFlight)
	return c, nil
}

// newTransport opens a fresh local UDP socket of raddr's family.
func newTransport(raddr *net.UDPAddr) (*quic.Transport, error) {
	laddr := &net.UDPAddr{IP: net.IPv4zero}
	if raddr.IP.To4() == nil {
		laddr = &net.UDPAddr{IP: net.IPv6zero}
	}
	if raddr.IP.IsLoopback() {
		laddr.IP = raddr.IP
	}
	udp, err := net.ListenUDP("udp", laddr)
	if err != nil {
		return nil, fmt.Errorf("open local udp socket: %w", err)
	}
	return &quic.Transport{Conn: udp}, nil
}

func clientTLS(opts *Options) (*tls.Config, error) {
	name := opts.ServerName
	if name == "" {
		host, _, err := net.SplitHostPort(opts.Addr)
		if err != nil {
			return nil, fmt.Errorf("dial: bad address %q: %w", opts.Addr, err)
		}
		name = host
	}
	conf := &tls.Config{
		ServerName: name,
		NextProtos: []string{spec.ALPN},
		MinVersion: tls.VersionTLS13,
	}
	if opts.Fingerprint != "" {
		pin, err := hex.DecodeString(strings.ReplaceAll(strings.ToLower(opts.Fingerprint), ":", ""))
		if err != nil || len(pin) != sha256.Size {
			return nil, errors.New("dial: the fingerprint must be 64 hex digits (SHA-256)")
		}
		// The pin replaces chain verification: the leaf must hash to it.
		conf.InsecureSkipVerify = true
		conf.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return ErrFingerprint
			}
			sum := sha256.Sum256(raw[0])
			if !bytes.Equal(sum[:], pin) {
				return ErrFingerprint
			}
			return nil
		}
	}
	return conf, nil
}

// Close closes the connection and its local sockets.
func (c *Conn) Close() error {
	err := c.qc.CloseWithError(spec.CloseNormal, "")
	c.blobs.close()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, tr := range c.transports {
		tr.Close()
		tr.Conn.Close()
	}
	c.transports = nil
	return err
}

// LocalAddr is the local UDP address the connection uses now: after
// Migrate, the new socket's.
func (c *Conn) LocalAddr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.transports) == 0 {
		if c.shared != nil {
			return c.shared.Conn.LocalAddr().String()
		}
		return ""
	}
	return c.transports[len(c.transports)-1].Conn.LocalAddr().String()
}

// Done is closed when the connection has closed.
func (c *Conn) Done() <-chan struct{} { return c.qc.Context().Done() }

// Err says why the connection closed (nil while it is open). Revoked
// reports the relay's device-removed close.
func (c *Conn) Err() error { return context.Cause(c.qc.Context()) }

// Revoked reports whether the relay closed the connection because this
// device was revoked: its credentials are dead.
func (c *Conn) Revoked() bool {
	var ae *quic.ApplicationError
	return errors.As(c.Err(), &ae) && ae.Remote && ae.ErrorCode == spec.CloseDeviceRemoved
}

// Migrate moves the live connection to a new local UDP socket, as a phone
// does when it moves from Wi-Fi to mobile data: the new path is validated
// and then used; streams, including the session stream, carry on.
func (c *Conn) Migrate(ctx context.Context) error {
	raddr, ok := c.qc.RemoteAddr().(*net.UDPAddr)
	if !ok {
		return errors.New("migrate: remote address is not UDP")
	}
	tr, err := newTransport(raddr)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	path, err := c.qc.AddPath(tr)
	if err != nil {
		tr.Close()
		tr.Conn.Close()
		return fmt.Errorf("migrate: %w", err)
	}
	if err := path.Probe(ctx); err != nil {
		_ = path.Close()
		tr.Close()
		tr.Conn.Close()
		return fmt.Errorf("migrate: probe new path: %w", err)
	}
	if err := path.Switch(); err != nil {
		_ = path.Close()
		tr.Close()
		tr.Conn.Close()
		return fmt.Errorf("migrate: switch to new path: %w", err)
	}
	c.mu.Lock()
	c.transports = append(c.transports, tr)
	c.mu.Unlock()
	return nil
}
