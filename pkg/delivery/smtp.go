package delivery

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// session is an open SMTP connection to one address, ready for MAIL.
type session struct {
	c      *smtp.Client
	conn   net.Conn // the raw TCP connection (closing it aborts anything)
	host   string
	addr   string
	key    string // pool key: address and identity
	tls    bool
	ext    map[string]string
	used   time.Time
	reused bool
	sent   int // transactions on this connection
}

func (s *session) ip() string {
	h, _, _ := net.SplitHostPort(s.addr)
	return h
}

func (s *session) has(ext string) bool { _, ok := s.ext[ext]; return ok }

func (s *session) close() {
	if s.c != nil {
		s.c.Close()
	}
	s.conn.Close()
}

// prefixConn replays a synthetic greeting before the real stream, so a
// go-smtp Client can take over a connection on which we already did the
// greeting, EHLO and STARTTLS ourselves (go-smtp has no public STARTTLS
// after a custom EHLO name).
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.prefix) > 0 {
		n := copy(b, p.prefix)
		p.prefix = p.prefix[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

// errTLS marks a failed STARTTLS handshake (opportunistic TLS retries in
// plain text; required TLS defers).
var errTLS = errors.New("delivery: STARTTLS failed")

// dial opens a session to addr: connect, greeting, EHLO with our name,
// STARTTLS when offered (unless plain), EHLO again.
func (d *deliverer) dial(ctx context.Context, t target, addr string, plain bool) (*session, error) {
	dl := net.Dialer{Timeout: d.cfg.DialTimeout}
	if t.source != "" {
		dl.LocalAddr = &net.TCPAddr{IP: net.ParseIP(t.source)} // the stream's own address
	}
	conn, err := dl.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	s, err := d.handshake(ctx, conn, t, plain)
	if err != nil {
		conn.Close()
		return nil, err
	}
	s.addr, s.key = addr, poolKey(addr, t)
	return s, nil
}

func poolKey(addr string, t target) string {
	key := addr
	if t.route != nil {
		key += "|" + t.route.Username + "|" + t.route.TLS
	}
	if t.source != "" || t.hello != "" {
		key += "|" + t.source + "|" + t.hello // streams never share a connection
	}
	return key
}

// requireTLS tells whether the target must not be used in plain text.
func (d *deliverer) requireTLS(t target) bool {
	if t.route != nil && t.route.TLS != "" {
		return t.route.TLS == TLSRequire || t.route.TLS == TLSImplicit
	}
	return d.cfg.RequireTLS
}

func (d *deliverer) handshake(ctx context.Context, raw net.Conn, t target, plain bool) (*session, error) {
	host := t.Host
	conn := raw
	implicit := t.route != nil && t.route.TLS == TLSImplicit
	if t.route != nil && t.route.TLS == TLSNone {
		plain = true
	}
	conn.SetDeadline(time.Now().Add(d.cfg.CommandTimeout))
	if implicit {
		// RFC 8314 §3: TLS from the first byte.
		tc := tls.Client(raw, d.tlsConfig(t))
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("%w: %w", errTLS, err)
		}
		conn = tc
	}
	tp := textproto.NewConn(conn)
	if _, _, err := tp.ReadResponse(220); err != nil { // RFC 5321 §4.3.1 greeting
		return nil, smtpErr(err)
	}
	name := d.cfg.Hostname
	if t.hello != "" {
		name = t.hello
	}
	ext, err := ehlo(tp, name)
	if err != nil {
		return nil, err
	}
	s := &session{conn: raw, host: host, ext: ext, tls: implicit}
	var cur net.Conn = conn
	if _, offered := ext["STARTTLS"]; implicit {
		// already encrypted
	} else if offered && !plain {
		id, err := tp.Cmd("STARTTLS")
		if err != nil {
			return nil, err
		}
		tp.StartResponse(id)
		_, _, err = tp.ReadResponse(220)
		tp.EndResponse(id)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errTLS, smtpErr(err))
		}
		tc := tls.Client(conn, d.tlsConfig(t))
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("%w: %w", errTLS, err)
		}
		s.tls = true
		cur = tc
	} else if d.requireTLS(t) {
		return nil, fmt.Errorf("%w: %s does not offer STARTTLS and TLS is required", errTLS, host)
	}
	raw.SetDeadline(time.Time{})
	c := smtp.NewClient(&prefixConn{Conn: cur, prefix: []byte("220 relayctl\r\n")})
	c.CommandTimeout = d.cfg.CommandTimeout
	c.SubmissionTimeout = d.cfg.DataTimeout
	if err := c.Hello(name); err != nil { // EHLO (again, after TLS: RFC 3207 §4.2)
		c.Close()
		return nil, smtpErr(err)
	}
	s.c = c
	if r := t.route; r != nil && r.Username != "" {
		ip, _, _ := net.SplitHostPort(raw.RemoteAddr().String())
		if !s.tls && !net.ParseIP(ip).IsLoopback() {
			c.Close()
			return nil, fmt.Errorf("%w: not sending the password for %s to %s without TLS", errTLS, r.Username, host)
		}
		if err := c.Auth(sasl.NewPlainClient("", r.Username, r.Password)); err != nil { // RFC 4954
			c.Close()
			return nil, fmt.Errorf("AUTH as %s at %s: %w", r.Username, host, err)
		}
	}
	if s.tls {
		// The extensions after STARTTLS are the ones that count.
		s.ext = map[string]string{}
		for _, e := range []string{"SIZE", "DSN", "8BITMIME", "SMTPUTF8", "PIPELINING", "REQUIRETLS"} {
			if ok, v := c.Extension(e); ok {
				s.ext[e] = v
			}
		}
	}
	return s, nil
}

func ehlo(tp *textproto.Conn, name string) (map[string]string, error) {
	id, err := tp.Cmd("EHLO %s", name)
	if err != nil {
		return nil, err
	}
	tp.StartResponse(id)
	_, msg, err := tp.ReadResponse(250)
	tp.EndResponse(id)
	if err != nil {
		var pe *textproto.Error
		if errors.As(err, &pe) && (pe.Code == 500 || pe.Code == 502) {
			// RFC 5321 §3.2: fall back to HELO, no extensions.
			id, err := tp.Cmd("HELO %s", name)
			if err != nil {
				return nil, err
			}
			tp.StartResponse(id)
			_, _, err = tp.ReadResponse(250)
			tp.EndResponse(id)
			return map[string]string{}, smtpErr(err)
		}
		return nil, smtpErr(err)
	}
	ext := map[string]string{}
	lines := strings.Split(msg, "\n")
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(l, " ")
		ext[strings.ToUpper(k)] = v
	}
	return ext, nil
}

func (d *deliverer) tlsConfig(t target) *tls.Config {
	c := &tls.Config{ServerName: t.Host, MinVersion: tls.VersionTLS12, RootCAs: d.cfg.RootCAs}
	if !d.requireTLS(t) || d.cfg.InsecureSkipVerify {
		// Opportunistic TLS (RFC 7435): encrypt without authenticating,
		// as MX certificates are rarely verifiable; RequireTLS verifies.
		c.InsecureSkipVerify = true
	}
	return c
}

// smtpErr turns a textproto error into a *smtp.SMTPError with the
// enhanced code parsed.
func smtpErr(err error) error {
	var pe *textproto.Error
	if !errors.As(err, &pe) {
		return err
	}
	se := &smtp.SMTPError{Code: pe.Code, Message: pe.Msg}
	if code, rest, ok := strings.Cut(pe.Msg, " "); ok {
		if ec, ok := parseEnhanced(code); ok {
			se.EnhancedCode = ec
			se.Message = rest
		}
	}
	return se
}

func parseEnhanced(s string) (smtp.EnhancedCode, bool) {
	var ec smtp.EnhancedCode
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return ec, false
	}
	for i, p := range parts {
		n := 0
		if p == "" || len(p) > 3 {
			return ec, false
		}
		for _, c := range p {
			if c < '0' || c > '9' {
				return ec, false
			}
			n = n*10 + int(c-'0')
		}
		ec[i] = n
	}
	return ec, ec[0] == 2 || ec[0] == 4 || ec[0] == 5
}

// failureOf describes err from a session as a failure.
func failureOf(err error, s *session, host, ip string) *failure {
	f := &failure{Host: host, IP: ip}
	if s != nil {
		f.TLS = s.tls
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		f.Code = se.Code
		if se.EnhancedCode != (smtp.EnhancedCode{}) && se.EnhancedCode != smtp.NoEnhancedCode && se.EnhancedCode[0] > 0 {
			f.Enhanced = fmt.Sprintf("%d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
		}
		f.Text = oneLine(se.Message)
		f.Permanent = se.Code >= 500
		return f
	}
	switch {
	case errors.Is(err, errTLS):
		f.Enhanced = "4.7.10"
	default:
		f.Enhanced = "4.4.1" // RFC 3463: no answer from host
	}
	f.Text = oneLine(err.Error())
	return f
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}

// pool keeps idle sessions per address for reuse (RFC 5321 §4.5.4.1
// lets a client send several messages over one connection).
type pool struct {
	mu   sync.Mutex
	idle map[string][]*session
	ttl  time.Duration
	max  int
}

func newPool(ttl time.Duration, max int) *pool {
	return &pool{idle: map[string][]*session{}, ttl: ttl, max: max}
}

func (p *pool) get(addr string) *session {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for l := p.idle[addr]; len(l) > 0; l = p.idle[addr] {
		s := l[len(l)-1]
		p.idle[addr] = l[:len(l)-1]
		if time.Since(s.used) < p.ttl {
			s.reused = true
			return s
		}
		go s.close()
	}
	return nil
}

func (p *pool) put(s *session) {
	if p == nil {
		s.c.Quit()
		s.close()
		return
	}
	s.used = time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle[s.key]) >= p.max {
		go func() { s.c.Quit(); s.close() }()
		return
	}
	p.idle[s.key] = append(p.idle[s.key], s)
}

// expire closes sessions idle longer than the TTL (all when all is true).
func (p *pool) expire(all bool) {
	p.mu.Lock()
	var old []*session
	for a, l := range p.idle {
		keep := l[:0]
		for _, s := range l {
			if all || time.Since(s.used) >= p.ttl {
				old = append(old, s)
			} else {
				keep = append(keep, s)
			}
		}
		if len(keep) == 0 {
			delete(p.idle, a)
		} else {
			p.idle[a] = keep
		}
	}
	p.mu.Unlock()
	for _, s := range old {
		s.conn.SetDeadline(time.Now().Add(time.Second))
		s.c.Quit()
		s.close()
	}
}
