// Package smtptest runs a real SMTP receiver (emersion/go-smtp, RFC 5321)
// on 127.0.0.1:0 for tests: it records every message it accepts, can
// offer STARTTLS (RFC 3207) or implicit TLS (RFC 8314) with a throw-away
// certificate, AUTH PLAIN (RFC 4954), and can be told to answer any
// command with a chosen reply (a 421 throttle, a 550 5.1.1 unknown user).
package smtptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Options configure a Server.
type Options struct {
	// Domain is the greeting name; "" → "mx.test".
	Domain string
	// StartTLS offers STARTTLS with a self-signed certificate for
	// 127.0.0.1 and localhost.
	StartTLS bool
	// ImplicitTLS makes the listener speak TLS from the first byte.
	ImplicitTLS bool
	// Users enables AUTH PLAIN with these name → password pairs; AUTH is
	// then required before MAIL.
	Users map[string]string
}

// Message is one accepted message.
type Message struct {
	From string
	To   []string
	Data []byte
	TLS  bool
	User string
	// Helo is the client's EHLO/HELO name, RemoteIP its address.
	Helo, RemoteIP string
}

// Hook decides the reply to a command: cmd is "MAIL", "RCPT" or "DATA",
// arg the address (DATA: the first recipient). A nil error accepts.
type Hook func(cmd, arg string) error

// Server is a running receiver; its methods are safe for concurrent use.
type Server struct {
	Addr string
	// RootCAs trusts the server's certificate.
	RootCAs *x509.CertPool

	mu        sync.Mutex
	msgs      []Message
	hook      Hook
	conns     int
	delivered chan struct{}
}

// Start starts a server and stops it when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s := &Server{delivered: make(chan struct{}, 1<<16)}
	be := smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		s.mu.Lock()
		s.conns++
		s.mu.Unlock()
		return &session{s: s, users: opts.Users, conn: c}, nil
	})
	srv := smtp.NewServer(be)
	srv.Domain = opts.Domain
	if srv.Domain == "" {
		srv.Domain = "mx.test"
	}
	srv.AllowInsecureAuth = true
	srv.ReadTimeout = 30 * time.Second
	srv.WriteTimeout = 30 * time.Second
	srv.MaxMessageBytes = 64 << 20
	srv.EnableSMTPUTF8 = true

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if opts.StartTLS || opts.ImplicitTLS {
		cert, pool := selfSigned(t)
		s.RootCAs = pool
		conf := &tls.Config{Certificates: []tls.Certificate{cert}}
		if opts.ImplicitTLS {
			l = tls.NewListener(l, conf)
		} else {
			srv.TLSConfig = conf
		}
	}
	s.Addr = l.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		srv.Close()
		l.Close() // in case Close ran before Serve registered the listener
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Errorf("smtptest: server did not stop")
		}
	})
	return s
}

// SetHook replaces the reply hook (nil accepts everything).
func (s *Server) SetHook(h Hook) {
	s.mu.Lock()
	s.hook = h
	s.mu.Unlock()
}

// Messages returns the accepted messages so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Conns is the number of connections accepted so far.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// Wait returns once n messages have been accepted, failing the test
// after timeout.
func (s *Server) Wait(t testing.TB, n int, timeout time.Duration) []Message {
	t.Helper()
	deadline := time.After(timeout)
	for {
		if m := s.Messages(); len(m) >= n {
			return m
		}
		select {
		case <-s.delivered:
		case <-deadline:
			t.Fatalf("smtptest: %d message(s) after %v, want %d", len(s.Messages()), timeout, n)
		}
	}
}

func (s *Server) call(cmd, arg string) error {
	s.mu.Lock()
	h := s.hook
	s.mu.Unlock()
	if h == nil {
		return nil
	}
	return h(cmd, arg)
}

type session struct {
	s     *Server
	conn  *smtp.Conn
	users map[string]string
	user  string
	from  string
	to    []string
}

var _ smtp.AuthSession = (*session)(nil)

func (ss *session) AuthMechanisms() []string {
	if ss.users == nil {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if p, ok := ss.users[user]; ok && p == pass {
			ss.user = user
			return nil
		}
		return smtp.ErrAuthFailed
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.users != nil && ss.user == "" {
		return smtp.ErrAuthRequired
	}
	if err := ss.s.call("MAIL", from); err != nil {
		return err
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := ss.s.call("RCPT", to); err != nil {
		return err
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	first := ""
	if len(ss.to) > 0 {
		first = ss.to[0]
	}
	if err := ss.s.call("DATA", first); err != nil {
		return err
	}
	_, isTLS := ss.conn.TLSConnectionState()
	ss.s.mu.Lock()
	ip, _, _ := net.SplitHostPort(ss.conn.Conn().RemoteAddr().String())
	ss.s.msgs = append(ss.s.msgs, Message{From: ss.from, To: ss.to, Data: data, TLS: isTLS, User: ss.user,
		Helo: ss.conn.Hostname(), RemoteIP: ip})
	ss.s.mu.Unlock()
	select {
	case ss.s.delivered <- struct{}{}:
	default:
	}
	ss.to = nil
	return nil
}

func (ss *session) Reset() { ss.from, ss.to = "", nil }

func (ss *session) Logout() error { return nil }

// Send runs MAIL, RCPT for each of to, and DATA with msg on a client
// that has said EHLO, and returns the first error (an *smtp.SMTPError
// for a refusal).
func Send(c *smtp.Client, from string, to []string, msg string) error {
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, msg); err != nil {
		return err
	}
	return w.Close()
}

// Reply is a convenience for hooks: an SMTP error reply.
func Reply(code int, enhanced [3]int, text string) error {
	return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode(enhanced), Message: text}
}

func selfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "smtptest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost", "mx.test"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
