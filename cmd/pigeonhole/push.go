package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/http2"

	"github.com/pigeonhole/pigeonhole/push"
)

// pushFlags are the push settings of pigeonhole serve.
type pushFlags struct {
	apnsKey, apnsKeyID, apnsTeamID, apnsTopics, apnsHost string
	fcmCredentials, fcmEndpoint                          string
	tokenKey, caFile                                     string
	cfg                                                  push.Config
}

// pushTokenKeyFile is the default seal key file, in the data directory.
const pushTokenKeyFile = "push-token.key"

func (p *pushFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.apnsKey, "apns-key", "", "APNs token-auth signing key `file` (.p8); with -apns-key-id and -apns-team-id turns APNs on")
	fs.StringVar(&p.apnsKeyID, "apns-key-id", "", "APNs key `id` (10 characters, from the Apple developer account)")
	fs.StringVar(&p.apnsTeamID, "apns-team-id", "", "APNs team `id` (10 characters)")
	fs.StringVar(&p.apnsTopics, "apns-topics", "", "comma-separated app bundle `ids` devices may register APNs tokens for (empty: any)")
	fs.StringVar(&p.apnsHost, "apns-host", "", "APNs endpoint `URL` for both environments (empty: Apple's; for testing against a local endpoint)")
	fs.StringVar(&p.fcmCredentials, "fcm-credentials", "", "Firebase service account JSON `file`; turns FCM on")
	fs.StringVar(&p.fcmEndpoint, "fcm-endpoint", "", "FCM HTTP v1 endpoint `URL` (empty: https://fcm.googleapis.com/v1; for testing)")
	fs.StringVar(&p.caFile, "push-ca", "", "extra CA certificate `file` (PEM) trusted for the push providers' endpoints (for testing)")
	fs.StringVar(&p.tokenKey, "push-token-key", "", "`file` with the 32-byte key that seals push tokens at rest (default: push-token.key in -data, created on the first start with push on)")
	fs.DurationVar(&p.cfg.Window, "push-window", time.Minute, "coalescing window: at most one push per device per this `duration`, reset when it connects")
	fs.IntVar(&p.cfg.QueueSize, "push-queue", 10000, "pushes waiting for a worker before more are dropped")
}

// pushService builds the push service the flags describe, or returns nil
// when no provider is configured (and says so once). Credential files are
// read and checked here: a broken one stops the start.
// pushService starts push, with tokens in recs (nil: in db).
func (p *pushFlags) pushService(ctx context.Context, db *pebble.DB, recs push.Records, dataDir string, log *slog.Logger, reg prometheus.Registerer) (*push.Service, error) {
	if p.apnsKey == "" && p.fcmCredentials == "" {
		if p.apnsKeyID != "" || p.apnsTeamID != "" || p.apnsTopics != "" {
			return nil, errors.New("-apns-key-id, -apns-team-id and -apns-topics need -apns-key")
		}
		log.Info("push is off: no -apns-key or -fcm-credentials; offline devices are not woken")
		return nil, nil
	}
	tlsConf, err := p.tlsConfig()
	if err != nil {
		return nil, err
	}
	cfg := p.cfg
	if p.apnsKey != "" {
		key, err := os.ReadFile(p.apnsKey)
		if err != nil {
			return nil, fmt.Errorf("read APNs key: %w", err)
		}
		cfg.APNs = &push.APNsConfig{AuthKey: key, KeyID: p.apnsKeyID, TeamID: p.apnsTeamID, Host: p.apnsHost}
		for _, t := range strings.Split(p.apnsTopics, ",") {
			if t = strings.TrimSpace(t); t != "" {
				cfg.APNs.Topics = append(cfg.APNs.Topics, t)
			}
		}
		if tlsConf != nil {
			cfg.APNs.HTTPClient = &http.Client{Transport: &http2.Transport{TLSClientConfig: tlsConf}}
		}
	}
	if p.fcmCredentials != "" {
		creds, err := os.ReadFile(p.fcmCredentials)
		if err != nil {
			return nil, fmt.Errorf("read FCM credentials: %w", err)
		}
		cfg.FCM = &push.FCMConfig{Credentials: creds, Endpoint: p.fcmEndpoint}
		if tlsConf != nil {
			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.TLSClientConfig = tlsConf
			cfg.FCM.HTTPClient = &http.Client{Transport: tr, Timeout: 30 * time.Second}
		}
	}
	if recs != nil && p.tokenKey == "" {
		return nil, errors.New("with -store nats://..., every relay seals push tokens with the same key: give each the same -push-token-key file")
	}
	sealKey, err := loadKey(p.tokenKey, dataDir, pushTokenKeyFile, "-push-token-key")
	if err != nil {
		return nil, err
	}
	if recs == nil {
		recs = push.PebbleRecords(db)
	}
	store, err := push.NewStoreOn(recs, sealKey)
	if err != nil {
		return nil, err
	}
	svc, err := push.New(ctx, cfg, store, log.With("component", "push"), reg)
	if err != nil {
		return nil, fmt.Errorf("%w (-apns-key %q, -fcm-credentials %q)", err, p.apnsKey, p.fcmCredentials)
	}
	log.Info("push is on", "apns", svc.Enabled(push.APNs), "fcm", svc.Enabled(push.FCM), "window", cfg.Window)
	return svc, nil
}

// tlsConfig returns a TLS configuration trusting -push-ca as well as the
// system roots, or nil when -push-ca is not set.
func (p *pushFlags) tlsConfig() (*tls.Config, error) {
	if p.caFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(p.caFile)
	if err != nil {
		return nil, fmt.Errorf("read -push-ca: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("-push-ca %s holds no PEM certificate", p.caFile)
	}
	return &tls.Config{RootCAs: pool}, nil
}

// loadKey reads a 32-byte key from file, or from name in the data
// directory, creating it there (0600) on first start. flagName names the
// flag in errors.
func loadKey(file, dataDir, name, flagName string) ([]byte, error) {
	if file != "" {
		k, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", flagName, err)
		}
		if len(k) != push.SealKeySize {
			return nil, fmt.Errorf("%s %s holds %d bytes, want %d random bytes", flagName, file, len(k), push.SealKeySize)
		}
		return k, nil
	}
	path := filepath.Join(dataDir, name)
	k, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		k = make([]byte, push.SealKeySize)
		if _, err := rand.Read(k); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("create %s: %w", path, err)
		}
		_, werr := f.Write(k)
		serr := f.Sync()
		if err := errors.Join(werr, serr, f.Close()); err != nil {
			return nil, fmt.Errorf("write %s: %w", path, err)
		}
		return k, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(k) != push.SealKeySize {
		return nil, fmt.Errorf("%s holds %d bytes, want %d", path, len(k), push.SealKeySize)
	}
	return k, nil
}
