package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/quic-go/quic-go"

	"github.com/pigeonhole/pigeonhole/spec"
)

// Server is a Pigeonhole relay. Create it with New and run it with Serve.
type Server struct {
	cfg     Config
	keys    KeyDirectory
	queues  Queues
	push    Pusher  // nil: no pushes
	cluster Cluster // alone{} for a single relay

	blobs     BlobStore   // nil: no media
	blobQuota UploadQuota // nil: no quota
	log       *slog.Logger
	m         *metrics
	um        *unauthMetrics
	rm        *reqMetrics

	unauth      unauthTable  // unauthenticated connections per prefix
	unauthBytes atomic.Int64 // first-frame bytes buffered for them

	registerLimit *limiter
	fetchLimit    *limiter
	provLimit     *limiter
	accountLimit  *limiter // relay-wide: one bucket, key ""
	claimLimit    *limiter // per target device
	sendLimit     *limiter
	// Sealed sends (sealed.go).
	certKeys             *SenderCertKeys // nil: no sender certificates
	sealedRecipientLimit *limiter
	sealedKeyLimit       *limiter
	sealedRefusalLimit   *limiter
	sealedSecret         [32]byte
	sessions             *sessionTable
	workers              *workers
	prov                 provTable
	now                  func() time.Time

	mu         sync.Mutex
	conns      map[*conn]struct{}
	transports map[*quic.Listener]*quic.Transport // made by Listen
	wg         sync.WaitGroup

	stopping chan struct{} // closed when shutdown begins (shutdown.go)
	stopOnce sync.Once
}

// New returns a relay on the given stores. Metrics are registered on reg
// (nil: none are exported); log receives operational messages and never a
// key, token, ciphertext or full account id.
func New(cfg Config, kd KeyDirectory, q Queues, log *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	if kd == nil || q == nil {
		return nil, errors.New("relay: a key directory and queues are required")
	}
	if cfg.MaxBlobBytes > spec.MediaMaxSize {
		return nil, fmt.Errorf("relay: MaxBlobBytes %d is over %d, the largest file the media format carries", cfg.MaxBlobBytes, spec.MediaMaxSize)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("relay: register metrics: %w", err)
	}
	um, err := newUnauthMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("relay: register metrics: %w", err)
	}
	rm, err := newReqMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("relay: register metrics: %w", err)
	}
	cfg = cfg.withDefaults()
	return &Server{
		um:                   um,
		rm:                   rm,
		cfg:                  cfg,
		keys:                 kd,
		queues:               q,
		log:                  log,
		m:                    m,
		registerLimit:        newLimiter(cfg.RegisterLimit),
		fetchLimit:           newLimiter(cfg.FetchLimit),
		provLimit:            newLimiter(cfg.ProvisioningLimit),
		accountLimit:         newLimiter(cfg.NewAccountLimit),
		claimLimit:           newLimiter(cfg.PreKeyClaimLimit),
		sendLimit:            newLimiter(cfg.SendLimit),
		sealedRecipientLimit: newLimiter(cfg.SealedRecipientLimit),
		sealedKeyLimit:       newLimiter(cfg.SealedKeyLimit),
		sealedRefusalLimit:   newLimiter(cfg.SealedRefusalLimit),
		sealedSecret:         newSealedSecret(),
		sessions:             newSessionTable(),
		workers:              newWorkers(),
		cluster:              alone{},
		now:                  time.Now,
		conns:                make(map[*conn]struct{}),
		stopping:             make(chan struct{}),
	}, nil
}

// QUICConfig returns the QUIC settings the relay's listener should use.
func (s *Server) QUICConfig() *quic.Config {
	return quicConfig(s.cfg) // quicconfig.go
}

// Serve accepts connections on ln until ctx ends, then shuts every
// connection down (shutdown.go: new and waiting requests are answered
// SHUTTING_DOWN, running ones finish, then the going-away close, within
// Config.ShutdownGrace), waits for their handlers and makes pending acks
// durable. It closes ln. It returns nil after a clean
// shutdown.
func (s *Server) Serve(ctx context.Context, ln *quic.Listener) error {
	if err := s.startCluster(ctx); err != nil {
		return fmt.Errorf("relay: join the cluster: %w", err)
	}
	var acceptErr error
	for {
		qc, err := ln.Accept(ctx)
		if err != nil {
			if ctx.Err() == nil {
				acceptErr = fmt.Errorf("relay: accept: %w", err)
			}
			break
		}
		c := newConn(s, qc)
		if !s.admitConn(c) {
			_ = qc.CloseWithError(spec.CloseTooManyUnauth, "too many unauthenticated connections from this network")
			continue
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			c.serve()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
	s.beginStop()
	s.closeListener(ln)
	s.wg.Wait()
	// A listener from Listen owns its transport and socket: close them
	// now (quic-go would otherwise keep the socket open while closed
	// connections drain), so the address can be bound again at once.
	s.mu.Lock()
	tr := s.transports[ln]
	delete(s.transports, ln)
	s.mu.Unlock()
	if tr != nil {
		_ = tr.Close()
		_ = tr.Conn.Close()
	}
	flushCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.queues.Flush(flushCtx); err != nil {
		return errors.Join(acceptErr, fmt.Errorf("relay: flush acks: %w", err))
	}
	return acceptErr
}

// Listen opens a QUIC listener on addr (host:port, UDP) with the relay's
// TLS and QUIC settings.
func (s *Server) Listen(addr string, cert tls.Certificate) (*quic.Listener, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("relay: listen on %s: %w", addr, err)
	}
	udp, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("relay: listen on %s: %w", addr, err)
	}
	tr := &quic.Transport{Conn: udp, StatelessResetKey: statelessResetKey(cert)}
	ln, err := tr.Listen(TLSConfig(cert), s.QUICConfig())
	if err != nil {
		udp.Close()
		return nil, fmt.Errorf("relay: listen on %s: %w", addr, err)
	}
	s.mu.Lock()
	if s.transports == nil {
		s.transports = make(map[*quic.Listener]*quic.Transport)
	}
	s.transports[ln] = tr
	s.mu.Unlock()
	return ln, nil
}
