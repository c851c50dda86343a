package delivery

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log"
	"math/big"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// sink is a real go-smtp receiving server on a loopback address, for
// delivery tests. Its decide hook chooses the reply to each command.
// It is not pkg/smtptest because delivery tests need what that receiver
// does not do: several MXs on one port at different loopback addresses
// (127.0.0.2-4, ::1), DSN (RFC 3461) on or off, a SIZE limit, the MAIL
// and RCPT parameters as received, and per-command attempt counts.
type sink struct {
	Addr string
	mu   sync.Mutex
	msgs []sunk
	// conns counts accepted connections.
	conns  int
	decide func(cmd, arg string, n int) error // n: how many times this cmd+arg was seen
	seen   map[string]int
	srv    *smtp.Server
}

type sunk struct {
	From   string
	To     []string
	Data   []byte
	TLS    bool
	Mail   smtp.MailOptions
	Rcpt   []smtp.RcptOptions
	Remote string
}

type sinkOpts struct {
	ip       string // listen address; "" → 127.0.0.1
	port     int    // 0 → any
	startTLS bool
	noDSN    bool
	decide   func(cmd, arg string, n int) error
	maxBytes int64 // advertised SIZE; 0 → 10 MiB
}

func startSink(t testing.TB, o sinkOpts) *sink {
	t.Helper()
	s := &sink{decide: o.decide, seen: map[string]int{}}
	be := smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		s.mu.Lock()
		s.conns++
		s.mu.Unlock()
		return &sinkSession{s: s, c: c}, nil
	})
	srv := smtp.NewServer(be)
	srv.Domain = "sink.test"
	srv.ErrorLog = log.New(io.Discard, "", 0)
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.EnableDSN = !o.noDSN
	srv.EnableSMTPUTF8 = true
	srv.MaxMessageBytes = 10 << 20
	if o.maxBytes > 0 {
		srv.MaxMessageBytes = o.maxBytes
	}
	if o.startTLS {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}
	}
	ip := o.ip
	if ip == "" {
		ip = "127.0.0.1"
	}
	l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(o.port)))
	if err != nil {
		t.Fatalf("sink listen: %v", err)
	}
	s.Addr = l.Addr().String()
	s.srv = srv
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(l) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return s
}

func (s *sink) port() int {
	_, p, _ := net.SplitHostPort(s.Addr)
	n, _ := strconv.Atoi(p)
	return n
}

func (s *sink) messages() []sunk {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sunk(nil), s.msgs...)
}

func (s *sink) connCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

func (s *sink) call(cmd, arg string) error {
	s.mu.Lock()
	s.seen[cmd+" "+arg]++
	n := s.seen[cmd+" "+arg]
	d := s.decide
	s.mu.Unlock()
	if d == nil {
		return nil
	}
	return d(cmd, arg, n)
}

type sinkSession struct {
	s   *sink
	c   *smtp.Conn
	cur sunk
}

func (ss *sinkSession) Mail(from string, o *smtp.MailOptions) error {
	if err := ss.s.call("MAIL", from); err != nil {
		return err
	}
	_, isTLS := ss.c.TLSConnectionState()
	ss.cur = sunk{From: from, TLS: isTLS, Remote: ss.c.Conn().RemoteAddr().String()}
	if o != nil {
		ss.cur.Mail = *o
	}
	return nil
}

func (ss *sinkSession) Rcpt(to string, o *smtp.RcptOptions) error {
	if err := ss.s.call("RCPT", to); err != nil {
		return err
	}
	ss.cur.To = append(ss.cur.To, to)
	if o != nil {
		ss.cur.Rcpt = append(ss.cur.Rcpt, *o)
	} else {
		ss.cur.Rcpt = append(ss.cur.Rcpt, smtp.RcptOptions{})
	}
	return nil
}

func (ss *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if err := ss.s.call("DATA", ss.cur.To[0]); err != nil {
		return err
	}
	ss.cur.Data = b
	ss.s.mu.Lock()
	ss.s.msgs = append(ss.s.msgs, ss.cur)
	ss.s.mu.Unlock()
	return nil
}

func (ss *sinkSession) Reset()        { ss.cur = sunk{} }
func (ss *sinkSession) Logout() error { return nil }

func selfSigned(t testing.TB) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sink.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"sink.test"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
