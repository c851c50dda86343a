package smtpd

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/relayctl/relayctl/pkg/queue"
)

// testServer is a running Server on 127.0.0.1 with its queue.
type testServer struct {
	*Server
	Addr string
	Q    *queue.Queue
	TLS  *tls.Config // client config trusting the server's certificate
}

type serverOpts struct {
	mode string
	// remote makes 127.0.0.1 count as a non-loopback address.
	remote bool
}

// testHash is the bcrypt hash of "secret" (cost 4 keeps tests fast).
func testHash(t testing.TB) string {
	t.Helper()
	return mustHash(t, "secret")
}

func mustHash(t testing.TB, pw string) string {
	t.Helper()
	h, err := hashCost(pw, 4)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func startServer(t testing.TB, cfg Config, o serverOpts) *testServer {
	t.Helper()
	q, err := queue.Open(t.TempDir(), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return startServerQueue(t, cfg, o, q)
}

func startServerQueue(t testing.TB, cfg Config, o serverOpts, q *queue.Queue) *testServer {
	t.Helper()
	if cfg.Hostname == "" {
		cfg.Hostname = "relay.test"
	}
	if cfg.AuthFailureDelay == 0 {
		cfg.AuthFailureDelay = time.Millisecond
	}
	s, err := New(cfg, q, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if o.remote {
		s.isLoopback = func(net.IP) bool { return false }
	}
	if o.mode == "" {
		o.mode = ModePlain
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srvTLS, cliTLS := testTLS(t)
	var tc *tls.Config
	if o.mode != ModePlain {
		tc = srvTLS
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(l, o.mode, tc) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-errc; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return &testServer{Server: s, Addr: l.Addr().String(), Q: q, TLS: cliTLS}
}

// testTLS returns a server config with a fresh self-signed certificate
// for 127.0.0.1 and a client config that trusts it.
func testTLS(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "relay.test"},
		DNSNames:     []string{"relay.test", "localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		&tls.Config{RootCAs: pool, ServerName: "relay.test"}
}

func (ts *testServer) dial(t testing.TB) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(ts.Addr)
	return hello(t, c, err)
}

func (ts *testServer) dialStartTLS(t testing.TB) *smtp.Client {
	t.Helper()
	c, err := smtp.DialStartTLS(ts.Addr, ts.TLS)
	return hello(t, c, err)
}

func (ts *testServer) dialTLS(t testing.TB) *smtp.Client {
	t.Helper()
	c, err := smtp.DialTLS(ts.Addr, ts.TLS)
	return hello(t, c, err)
}

// hello takes a client just dialled (or the dial error), closes it when
// the test ends and says EHLO client.test.
func hello(t testing.TB, c *smtp.Client, err error) *smtp.Client {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	return c
}

// messages returns the queued envelopes and their content.
func (ts *testServer) messages(t testing.TB) ([]*queue.Envelope, []string) {
	t.Helper()
	envs, err := ts.Q.List()
	if err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for _, e := range envs {
		rc, err := ts.Q.Content(e.ID)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, string(b))
	}
	return envs, bodies
}

const simpleMsg = "From: App <app@example.com>\r\nTo: user@dest.test\r\nSubject: hi\r\n\r\nHello.\r\n"

// code returns the SMTP reply code of err (0 if it is not a reply).
func code(err error) int {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

func wantCode(t testing.TB, err error, want int, what string) {
	t.Helper()
	if got := code(err); got != want {
		t.Fatalf("%s: got %v (code %d), want %d", what, err, got, want)
	}
}

// rawConn is a line-level SMTP client for what go-smtp's client will not
// send (bare LF payloads, pipelined junk).
type rawConn struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := &rawConn{t: t, c: c, br: bufio.NewReader(c)}
	return r
}

func (r *rawConn) write(s string) {
	r.t.Helper()
	if _, err := io.WriteString(r.c, s); err != nil {
		r.t.Fatal(err)
	}
}

// reply reads one (possibly multi-line) reply and returns it joined.
func (r *rawConn) reply() string {
	r.t.Helper()
	var lines []string
	for {
		l, err := r.br.ReadString('\n')
		if err != nil {
			r.t.Fatalf("read reply: %v (so far %q)", err, lines)
		}
		l = strings.TrimRight(l, "\r\n")
		lines = append(lines, l)
		if len(l) < 4 || l[3] != '-' {
			return strings.Join(lines, "\n")
		}
	}
}

func (r *rawConn) expect(prefix string) string {
	r.t.Helper()
	got := r.reply()
	if !strings.HasPrefix(got, prefix) {
		r.t.Fatalf("got %q, want prefix %q", got, prefix)
	}
	return got
}
