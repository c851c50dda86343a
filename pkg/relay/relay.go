// Package relay wires relayctl's relay together: the durable queue
// (pkg/queue), the delivery engine (pkg/delivery, RFC 5321 §5) and the
// submission server (pkg/smtpd, RFC 6409), configured from the `serve:`
// section of the configuration. It owns the listeners, the delivery log
// and the graceful shutdown, and offers hook points (Hooks) for the
// admin socket, metrics, suppression list and webhooks.
package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"os"
	"sync"
	"sync/atomic"

	"github.com/emersion/go-smtp"

	"github.com/relayctl/relayctl/pkg/delivery"
	"github.com/relayctl/relayctl/pkg/dnsclient"
	"github.com/relayctl/relayctl/pkg/events"
	"github.com/relayctl/relayctl/pkg/queue"
	"github.com/relayctl/relayctl/pkg/smtpd"
)

// Hooks are the extension points of a running relay. All are optional.
type Hooks struct {
	// Events receive every delivery event (after the delivery log has
	// it): webhooks and metrics subscribe here.
	Events []func(events.Event)
	// OnResult is called after each recipient attempt (the suppression
	// list learns hard bounces here).
	OnResult func(env *queue.Envelope, rcpt queue.Recipient, res delivery.Result)
	// RcptCheck may refuse a recipient at RCPT time (suppression list).
	RcptCheck func(ctx context.Context, from, rcpt string) *smtp.SMTPError
	// RcptDrop may accept a recipient at RCPT time but never deliver it
	// (suppression list with action drop); see smtpd.Config.RcptDrop.
	RcptDrop func(ctx context.Context, from, rcpt string) (reason string, drop bool)
	// Classify may set the stream of each accepted message before it is
	// queued; Priority ranks queued messages (above 0: sent before the
	// rest). Delivery streams use both.
	Classify func(env *queue.Envelope, header mail.Header)
	Priority func(env *queue.Envelope) int
	// Queued is told about each message the SMTP server queued.
	Queued func(env *queue.Envelope)
	// Services run alongside the relay (admin socket, metrics listener)
	// until ctx is cancelled; an error from one stops the relay.
	Services []Service
}

// ConfigError is an invalid configuration found by New or Reload (bad
// hash, unreadable certificate or key, a listener that would offer AUTH
// in cleartext), as opposed to a failure to start.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// Service is a long-running part of the relay started by Run.
type Service func(ctx context.Context, r *Relay) error

// Relay is a configured relay: queue, delivery engine and SMTP server.
type Relay struct {
	Queue  *queue.Queue
	Engine *delivery.Engine
	SMTP   *smtpd.Server

	log       *slog.Logger
	cfg       Config
	listeners []boundListener
	dlog      *os.File
	events    []func(events.Event)
	ran       atomic.Bool
}

type boundListener struct {
	l    net.Listener
	mode string
	cert *certStore // nil for plain listeners
}

// New opens the spool, builds the engine and the SMTP server and binds
// the listeners (so an address in use fails here, before Run). With a
// nil Delivery.Resolver the system resolvers are used.
func New(cfg Config, log *slog.Logger) (_ *Relay, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Spool == "" {
		if cfg.Spool, err = DefaultSpool(); err != nil {
			return nil, err
		}
	}
	if cfg.Hostname == "" {
		h, herr := os.Hostname()
		if herr != nil || h == "" {
			return nil, errors.New("relay: no hostname configured and the system has none")
		}
		cfg.Hostname = h
	}
	if len(cfg.Listeners) == 0 {
		cfg.Listeners = []smtpd.Listener{{Addr: DefaultListen, Mode: smtpd.ModePlain}}
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = DefaultShutdownTimeout
	}
	if err := cfg.loadDKIM(); err != nil {
		return nil, &ConfigError{err}
	}
	cfg.SMTP.Hostname = cfg.Hostname
	if cfg.Delivery.Hostname == "" {
		cfg.Delivery.Hostname = cfg.Hostname
	}
	if cfg.Delivery.Resolver == nil {
		servers, err := dnsclient.SystemServers("/etc/resolv.conf")
		if err != nil {
			return nil, fmt.Errorf("relay: resolvers: %w", err)
		}
		if cfg.Delivery.Resolver, err = dnsclient.New(servers); err != nil {
			return nil, fmt.Errorf("relay: resolvers: %w", err)
		}
	}
	// Check the TLS material before touching the spool or the network.
	certs := make([]*certStore, len(cfg.Listeners))
	for i, l := range cfg.Listeners {
		if l.Mode == "" {
			cfg.Listeners[i].Mode, l.Mode = smtpd.ModePlain, smtpd.ModePlain
		}
		if l.Mode == smtpd.ModePlain {
			if l.CertFile != "" || l.KeyFile != "" {
				return nil, &ConfigError{fmt.Errorf("relay: listener %s: a certificate needs mode starttls or tls", l.Addr)}
			}
			continue
		}
		if l.CertFile == "" || l.KeyFile == "" {
			return nil, &ConfigError{fmt.Errorf("relay: listener %s: mode %s needs cert_file and key_file", l.Addr, l.Mode)}
		}
		if certs[i], err = loadCert(l.CertFile, l.KeyFile); err != nil {
			return nil, &ConfigError{fmt.Errorf("relay: listener %s: %w", l.Addr, err)}
		}
	}

	r := &Relay{log: log, cfg: cfg}
	defer func() {
		if err != nil {
			r.closeAll()
		}
	}()

	opts := queue.DefaultOptions()
	opts.Fsync = !cfg.NoFsync
	opts.Priority = cfg.Hooks.Priority
	if r.Queue, err = queue.Open(cfg.Spool, opts); err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}

	if cfg.DeliveryLog != "" {
		if r.dlog, err = os.OpenFile(cfg.DeliveryLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640); err != nil {
			return nil, fmt.Errorf("relay: delivery log: %w", err)
		}
		w := events.NewWriter(r.dlog)
		r.events = append(r.events, func(e events.Event) {
			if err := w.Write(e); err != nil {
				log.Error("delivery log write failed", "path", cfg.DeliveryLog, "err", err)
			}
		})
	}
	r.events = append(r.events, cfg.Hooks.Events...)

	dcfg := cfg.Delivery
	dcfg.Events = r.emit
	if dcfg.Log == nil {
		dcfg.Log = log.With("component", "delivery")
	}
	if cfg.Hooks.OnResult != nil {
		dcfg.OnResult = cfg.Hooks.OnResult
	}
	if r.Engine, err = delivery.New(dcfg, r.Queue); err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}

	if r.SMTP, err = smtpd.New(r.smtpConfig(cfg), r.Queue, log); err != nil {
		return nil, &ConfigError{fmt.Errorf("relay: %w", err)}
	}

	for i, l := range cfg.Listeners {
		ln, lerr := net.Listen("tcp", l.Addr)
		if lerr != nil {
			return nil, fmt.Errorf("relay: listen: %w", lerr)
		}
		r.listeners = append(r.listeners, boundListener{l: ln, mode: l.Mode, cert: certs[i]})
		if err := r.SMTP.CheckListener(ln, l.Mode); err != nil {
			return nil, &ConfigError{err}
		}
	}
	return r, nil
}

// smtpConfig is cfg's SMTP settings wired to the relay's hooks and
// event sinks (the hooks are those the relay was built with).
func (r *Relay) smtpConfig(cfg Config) smtpd.Config {
	scfg := cfg.SMTP
	scfg.RcptCheck = r.cfg.Hooks.RcptCheck
	scfg.RcptDrop = r.cfg.Hooks.RcptDrop
	scfg.Classify = r.cfg.Hooks.Classify
	scfg.Queued = r.cfg.Hooks.Queued
	scfg.Events = r.emit
	return scfg
}

func (r *Relay) emit(e events.Event) {
	for _, fn := range r.events {
		fn(e)
	}
}

// Addrs are the bound listener addresses, in configuration order.
func (r *Relay) Addrs() []net.Addr {
	out := make([]net.Addr, len(r.listeners))
	for i, l := range r.listeners {
		out[i] = l.l.Addr()
	}
	return out
}

// Config is the configuration the relay runs with (defaults applied).
func (r *Relay) Config() Config { return r.cfg }

// Run serves SMTP and delivers until ctx is cancelled, then stops
// gracefully: no new connections, SMTP transactions in progress get up
// to ShutdownTimeout to finish, deliveries in flight are abandoned and
// stay queued, and the queue is closed. Run can be called once.
func (r *Relay) Run(ctx context.Context) error {
	if !r.ran.CompareAndSwap(false, true) {
		return errors.New("relay: Run called twice")
	}
	defer r.closeAll()

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err })
		cancel()
	}

	engineDone := make(chan struct{})
	go func() {
		defer close(engineDone)
		if err := r.Engine.Run(runCtx); err != nil {
			fail(fmt.Errorf("relay: delivery: %w", err))
		}
	}()

	for _, bl := range r.listeners {
		var tc *tls.Config
		if bl.cert != nil {
			tc = &tls.Config{GetCertificate: bl.cert.get, MinVersion: tls.VersionTLS12}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.SMTP.Serve(bl.l, bl.mode, tc); err != nil {
				fail(err)
			}
		}()
	}
	for _, svc := range r.cfg.Hooks.Services {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := svc(runCtx, r); err != nil && !errors.Is(err, context.Canceled) {
				fail(fmt.Errorf("relay: service: %w", err))
			}
		}()
	}
	r.log.Info("relay running", "hostname", r.cfg.Hostname, "spool", r.cfg.Spool, "queued", r.Queue.Len())

	<-runCtx.Done()
	r.log.Info("shutting down", "timeout", r.cfg.ShutdownTimeout)
	sctx, scancel := context.WithTimeout(context.Background(), r.cfg.ShutdownTimeout)
	defer scancel()
	if err := r.SMTP.Shutdown(sctx); err != nil {
		r.log.Warn("smtp shutdown", "err", err)
	}
	<-engineDone
	wg.Wait()
	r.log.Info("stopped", "queued", r.Queue.Len())
	return firstErr
}

// Reload applies cfg where it safely can while running: users, trusted
// networks, connection and AUTH limits, DKIM keys and TLS certificates
// (re-read from their files). Listeners, spool and delivery settings
// need a restart; a change to them is logged.
func (r *Relay) Reload(cfg Config) error {
	if err := cfg.loadDKIM(); err != nil {
		return err
	}
	if cfg.Hostname == "" {
		cfg.Hostname = r.cfg.Hostname
	}
	cfg.SMTP.Hostname = cfg.Hostname
	scfg := r.smtpConfig(cfg)
	// Re-read certificates first so a bad file changes nothing.
	type pending struct {
		cs   *certStore
		cert *tls.Certificate
	}
	var certs []pending
	for i, bl := range r.listeners {
		if bl.cert == nil || i >= len(cfg.Listeners) {
			continue
		}
		l := cfg.Listeners[i]
		c, err := tls.LoadX509KeyPair(l.CertFile, l.KeyFile)
		if err != nil {
			return fmt.Errorf("relay: reload: listener %s: %w", l.Addr, err)
		}
		certs = append(certs, pending{bl.cert, &c})
	}
	if err := r.SMTP.Reload(scfg); err != nil {
		return err
	}
	for _, p := range certs {
		p.cs.cur.Store(p.cert)
	}
	if cfg.Spool != "" && cfg.Spool != r.cfg.Spool || len(cfg.Listeners) != len(r.cfg.Listeners) {
		r.log.Warn("reload: spool and listener changes apply after a restart")
	}
	r.log.Info("configuration reloaded")
	return nil
}

func (r *Relay) closeAll() {
	for _, bl := range r.listeners {
		_ = bl.l.Close()
	}
	if r.Queue != nil {
		if err := r.Queue.Close(); err != nil {
			r.log.Warn("closing queue", "err", err)
		}
	}
	if r.dlog != nil {
		_ = r.dlog.Close()
	}
}

// certStore holds a listener's certificate; Reload swaps it.
type certStore struct {
	cur atomic.Pointer[tls.Certificate]
}

func loadCert(certFile, keyFile string) (*certStore, error) {
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	cs := &certStore{}
	cs.cur.Store(&c)
	return cs, nil
}

func (c *certStore) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.cur.Load(), nil
}
