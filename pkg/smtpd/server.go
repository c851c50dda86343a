package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/mail"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/relayctl/relayctl/pkg/dkim"
	"github.com/relayctl/relayctl/pkg/events"
	"github.com/relayctl/relayctl/pkg/queue"
)

// Listener modes.
const (
	ModeStartTLS = "starttls" // plain connection that offers STARTTLS (RFC 3207, port 587 style)
	ModeTLS      = "tls"      // implicit TLS (RFC 8314, port 465 style)
	ModePlain    = "plain"    // no TLS at all
)

// Defaults applied by New for zero Config values.
const (
	DefaultMaxMessageBytes   = 25 << 20
	DefaultMaxRecipients     = 100
	DefaultMaxConns          = 200
	DefaultMaxConnsPerIP     = 50 // Postfix smtpd_client_connection_count_limit
	DefaultMaxAuthFailures   = 5
	DefaultReadTimeout       = 5 * time.Minute  // RFC 5321 §4.5.3.2.7 server timeout
	DefaultWriteTimeout      = 5 * time.Minute  // RFC 5321 §4.5.3.2
	DefaultDataTimeout       = 10 * time.Minute // RFC 5321 §4.5.3.2.6 DATA termination
	DefaultMaxBufferedBytes  = 512 << 20
	DefaultAuthFailureDelay  = time.Second
	DefaultAuthFailureWindow = 15 * time.Minute
)

// User may authenticate with SMTP AUTH.
type User struct {
	Name         string
	PasswordHash string // bcrypt ($2a$/$2b$/$2y$)
	// AllowedSenders restricts the envelope sender and the From header
	// addresses to these domains ("example.com") or addresses
	// ("billing@example.com"); empty means any.
	AllowedSenders []string
}

// Listener is one configured listening address.
type Listener struct {
	Addr              string
	Mode              string // ModeStartTLS, ModeTLS or ModePlain
	CertFile, KeyFile string
}

// Config configures the server. Zero values take the defaults above.
type Config struct {
	// Hostname is announced in the greeting and the Received field.
	Hostname string
	Users    []User
	// TrustedNetworks may relay without AUTH.
	TrustedNetworks []*net.IPNet
	// InsecureAuth offers AUTH on unencrypted non-loopback connections.
	InsecureAuth bool

	MaxMessageBytes int64
	MaxRecipients   int
	// MaxBufferedBytes bounds the message data all sessions together
	// hold in memory while checking, signing and queueing; a DATA that
	// would pass it is answered 451 4.3.2 (try again later).
	MaxBufferedBytes int64
	MaxConns         int // total simultaneous connections
	MaxConnsPerIP    int
	// MaxAuthFailures failed AUTH attempts from one IP within
	// AuthFailureWindow, after which that IP is refused until the
	// window has passed. Each failure is answered after
	// AuthFailureDelay × the number of failures so far.
	MaxAuthFailures   int
	AuthFailureDelay  time.Duration
	AuthFailureWindow time.Duration

	ReadTimeout, WriteTimeout, DataTimeout time.Duration

	// DKIM keys: a message is signed with the key whose Domain is the
	// From header's domain or its closest parent domain.
	DKIM []dkim.SignOptions
	// UnsignedDomains are recipient domains (or "*") whose route turns
	// DKIM signing off; a message is left unsigned when every
	// recipient's domain is listed.
	UnsignedDomains []string

	// RcptCheck is consulted for every recipient (the suppression list
	// uses it); a non-nil error refuses the recipient with that reply.
	RcptCheck func(ctx context.Context, from, rcpt string) *smtp.SMTPError
	// RcptDrop is consulted for every recipient RcptCheck let through;
	// when it answers drop, the RCPT is accepted (250) but the recipient
	// is never queued: Events gets a "suppressed" event with the reason
	// once the message is accepted. A message whose recipients were all
	// dropped is answered 250 and not stored at all.
	RcptDrop func(ctx context.Context, from, rcpt string) (reason string, drop bool)
	// Classify, when set, sees each accepted message's envelope and
	// header fields just before it is queued and may set env.Stream (the
	// delivery stream: transactional, bulk…).
	Classify func(env *queue.Envelope, header mail.Header)
	// Queued, when set, is told about each message once it is queued
	// (metrics count accepted messages here).
	Queued func(env *queue.Envelope)
	// Events receives a bounced event for every recipient that
	// RcptCheck refused and a suppressed event for every recipient that
	// RcptDrop dropped, so both show in the delivery log.
	Events func(events.Event)
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// runtime is a validated, defaulted Config with lookup tables. It is
// replaced as a whole by Reload; sessions keep the one they started with.
type runtime struct {
	cfg   Config
	users map[string]*User
}

// Server accepts mail on any number of listeners and queues it.
type Server struct {
	log *slog.Logger
	q   *queue.Queue

	rt atomic.Pointer[runtime]

	mu      sync.Mutex
	servers []*smtp.Server
	conns   map[*trackedConn]struct{}
	perIP   map[string]int
	closing bool
	done    chan struct{}

	auth *authLimiter
	// buffered is the message data sessions hold in memory right now.
	buffered atomic.Int64
	// isLoopback decides which clients and listeners count as local;
	// tests replace it to play a remote client over 127.0.0.1.
	isLoopback func(net.IP) bool
}

// New checks cfg and returns a server that queues into q.
func New(cfg Config, q *queue.Queue, log *slog.Logger) (*Server, error) {
	if q == nil {
		return nil, errors.New("smtpd: no queue")
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	rt, err := compile(cfg)
	if err != nil {
		return nil, err
	}
	s := &Server{
		log:   log,
		q:     q,
		conns: make(map[*trackedConn]struct{}),
		perIP: make(map[string]int),
		done:  make(chan struct{}),
		auth:  newAuthLimiter(),

		isLoopback: net.IP.IsLoopback,
	}
	s.rt.Store(rt)
	return s, nil
}

func compile(cfg Config) (*runtime, error) {
	if cfg.Hostname == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		cfg.Hostname = h
	}
	if strings.ContainsAny(cfg.Hostname, " \t\r\n") {
		return nil, fmt.Errorf("smtpd: hostname %q contains white space", cfg.Hostname)
	}
	setDefault(&cfg.MaxMessageBytes, DefaultMaxMessageBytes)
	setDefault(&cfg.MaxRecipients, DefaultMaxRecipients)
	setDefault(&cfg.MaxConns, DefaultMaxConns)
	setDefault(&cfg.MaxConnsPerIP, DefaultMaxConnsPerIP)
	setDefault(&cfg.MaxAuthFailures, DefaultMaxAuthFailures)
	setDefault(&cfg.AuthFailureDelay, DefaultAuthFailureDelay)
	setDefault(&cfg.AuthFailureWindow, DefaultAuthFailureWindow)
	setDefault(&cfg.ReadTimeout, DefaultReadTimeout)
	setDefault(&cfg.WriteTimeout, DefaultWriteTimeout)
	setDefault(&cfg.DataTimeout, DefaultDataTimeout)
	setDefault(&cfg.MaxBufferedBytes, DefaultMaxBufferedBytes)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	rt := &runtime{cfg: cfg, users: make(map[string]*User, len(cfg.Users))}
	for i := range cfg.Users {
		u := &cfg.Users[i]
		if u.Name == "" {
			return nil, fmt.Errorf("smtpd: user %d has no name", i+1)
		}
		if _, dup := rt.users[u.Name]; dup {
			return nil, fmt.Errorf("smtpd: user %q is listed twice", u.Name)
		}
		if err := checkHash(u.PasswordHash); err != nil {
			return nil, fmt.Errorf("smtpd: user %q: %w", u.Name, err)
		}
		for _, a := range u.AllowedSenders {
			if a == "" || strings.ContainsAny(a, " \t<>") {
				return nil, fmt.Errorf("smtpd: user %q: invalid allowed sender %q", u.Name, a)
			}
		}
		rt.users[u.Name] = u
	}
	for i, o := range cfg.DKIM {
		if o.Domain == "" || o.Selector == "" || o.Signer == nil {
			return nil, fmt.Errorf("smtpd: dkim key %d: domain, selector and key are required", i+1)
		}
	}
	return rt, nil
}

func setDefault[T int | int64 | time.Duration](p *T, d T) {
	if *p <= 0 {
		*p = d
	}
}

// Serve accepts connections on l until Shutdown. mode is ModeStartTLS,
// ModeTLS or ModePlain; tlsConf is required for the first two.
//
// It refuses to offer AUTH in cleartext to the network: a plain listener
// on a non-loopback address with users configured is an error unless
// InsecureAuth is set.
func (s *Server) Serve(l net.Listener, mode string, tlsConf *tls.Config) error {
	rt := s.rt.Load()
	if err := s.CheckListener(l, mode); err != nil {
		return err
	}
	switch mode {
	case ModeStartTLS, ModeTLS:
		if tlsConf == nil {
			return fmt.Errorf("smtpd: listener %s: mode %q needs a certificate and key", l.Addr(), mode)
		}
	default:
		tlsConf = nil
	}

	srv := smtp.NewServer(&backend{s: s})
	srv.Domain = rt.cfg.Hostname
	srv.MaxMessageBytes = rt.cfg.MaxMessageBytes
	srv.MaxRecipients = rt.cfg.MaxRecipients
	srv.ReadTimeout = rt.cfg.ReadTimeout
	srv.WriteTimeout = rt.cfg.WriteTimeout
	// Whether AUTH is allowed is decided per connection by the session
	// (TLS, loopback client, or InsecureAuth); go-smtp's global switch
	// would allow it everywhere or nowhere.
	srv.AllowInsecureAuth = true
	srv.EnableDSN = true
	srv.EnableSMTPUTF8 = true
	srv.TLSConfig = tlsConf
	srv.ErrorLog = slogPrinter{s.log}

	var ln net.Listener = &limitListener{Listener: l, s: s, tls: mode == ModeTLS}
	if mode == ModeTLS {
		ln = tls.NewListener(ln, tlsConf)
	}

	s.mu.Lock()
	if s.closing {
		// Shut down before this listener started: not an error.
		s.mu.Unlock()
		return nil
	}
	s.servers = append(s.servers, srv)
	s.mu.Unlock()

	s.log.Info("listening", "addr", l.Addr().String(), "mode", mode)
	err := srv.Serve(ln)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("smtpd: serve %s: %w", l.Addr(), err)
	}
	return nil
}

// CheckListener reports whether l may serve in mode: the mode is known,
// and a plain listener on a non-loopback address does not offer AUTH in
// cleartext (RFC 4954 §4 and RFC 8314 §3) unless InsecureAuth is set.
func (s *Server) CheckListener(l net.Listener, mode string) error {
	rt := s.rt.Load()
	switch mode {
	case ModeStartTLS, ModeTLS:
		return nil
	case ModePlain:
		if len(rt.users) > 0 && !rt.cfg.InsecureAuth && !s.isLoopback(addrIP(l.Addr())) {
			return fmt.Errorf("smtpd: listener %s: refusing to offer AUTH without TLS on a non-loopback address (configure a certificate, or set insecure_auth)", l.Addr())
		}
		return nil
	}
	return fmt.Errorf("smtpd: listener %s: unknown mode %q (want starttls, tls or plain)", l.Addr(), mode)
}

// Reload replaces users, trusted networks, connection and AUTH limits and
// DKIM keys for new sessions. The message size and recipient limits,
// timeouts and the hostname are fixed per listener when Serve starts;
// changes to them are logged and take effect on restart.
func (s *Server) Reload(cfg Config) error {
	rt, err := compile(cfg)
	if err != nil {
		return err
	}
	old := s.rt.Load().cfg
	n := rt.cfg
	if old.Hostname != n.Hostname || old.MaxMessageBytes != n.MaxMessageBytes || old.MaxRecipients != n.MaxRecipients ||
		old.ReadTimeout != n.ReadTimeout || old.WriteTimeout != n.WriteTimeout {
		s.log.Warn("reload: hostname, max_message_bytes, max_recipients and read/write timeouts apply after a restart")
	}
	s.rt.Store(rt)
	s.log.Info("reloaded", "users", len(rt.users), "trusted_networks", len(n.TrustedNetworks), "dkim_keys", len(n.DKIM))
	return nil
}

// Shutdown stops accepting connections, closes idle sessions with
// "421 4.3.2", lets transactions in progress finish, and returns when
// every connection is closed. When ctx ends first, it closes the rest
// and returns ctx's error; a message whose DATA was cut off is not
// queued and the client was not told 250.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closing {
		s.closing = true
		close(s.done)
	}
	servers := append([]*smtp.Server(nil), s.servers...)
	s.mu.Unlock()

	var wg sync.WaitGroup
	errc := make(chan error, len(servers))
	for _, srv := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, smtp.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
				errc <- err
			}
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()

	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		s.closeIdle()
		select {
		case <-finished:
			close(errc)
			for err := range errc {
				if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
					return fmt.Errorf("smtpd: shutdown: %w", err)
				}
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return nil
		case <-ctx.Done():
			for _, srv := range servers {
				_ = srv.Close()
			}
			s.closeAll()
			<-finished
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func (s *Server) closingNow() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// backend adapts Server to go-smtp.
type backend struct{ s *Server }

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return b.s.newSession(c)
}

// slogPrinter routes go-smtp's internal error log to slog.
type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Printf(format string, v ...any) {
	p.l.Debug("smtp: " + strings.TrimSpace(fmt.Sprintf(format, v...)))
}
func (p slogPrinter) Println(v ...any) {
	p.l.Debug("smtp: " + strings.TrimSpace(fmt.Sprintln(v...)))
}

// addrIP is the IP of a listener or peer address (nil if it has none).
func addrIP(a net.Addr) net.IP {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return nil
	}
	return net.ParseIP(host)
}
