package smtpd

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// limitListener enforces the connection limits and the AUTH-failure
// block at accept time, and tracks connections for Shutdown.
type limitListener struct {
	net.Listener
	s   *Server
	tls bool // the listener is wrapped in implicit TLS
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c.RemoteAddr())
		tc, reason := l.s.admit(c, ip, l.tls)
		if tc != nil {
			return tc, nil
		}
		l.s.log.Info("connection refused", "client", ip, "reason", reason)
		go l.s.refuse(c, l.tls, reason)
	}
}

// trackedConn is one accepted connection; Close releases its slot.
type trackedConn struct {
	net.Conn
	s    *Server
	ip   string
	busy atomic.Bool // a mail transaction is in progress
	tls  atomic.Bool // the byte stream is TLS: no plaintext 421 on shutdown
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.s.release(c) })
	return c.Conn.Close()
}

// admit returns a tracked connection, or nil and the reason it is refused.
func (s *Server) admit(c net.Conn, ip string, isTLS bool) (*trackedConn, string) {
	rt := s.rt.Load()
	if s.auth.blocked(ip, rt.cfg.MaxAuthFailures, rt.cfg.AuthFailureWindow, rt.cfg.Now()) {
		return nil, "4.7.0 Too many failed authentication attempts from your address, try again later"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil, "4.3.2 Service shutting down"
	}
	if len(s.conns) >= rt.cfg.MaxConns {
		return nil, "4.7.0 Too many connections, try again later"
	}
	if s.perIP[ip] >= rt.cfg.MaxConnsPerIP {
		return nil, "4.7.0 Too many connections from your address, try again later"
	}
	tc := &trackedConn{Conn: c, s: s, ip: ip}
	tc.tls.Store(isTLS)
	s.conns[tc] = struct{}{}
	s.perIP[ip]++
	return tc, ""
}

func (s *Server) release(c *trackedConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	if s.perIP[c.ip]--; s.perIP[c.ip] <= 0 {
		delete(s.perIP, c.ip)
	}
}

// refuse answers 421 (RFC 5321 §3.8: the server may close with 421) and
// closes. On an implicit-TLS listener it closes without a reply: the
// handshake has not happened yet.
func (s *Server) refuse(c net.Conn, isTLS bool, reason string) {
	defer c.Close()
	if isTLS {
		return
	}
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = c.Write([]byte("421 " + reason + "\r\n"))
}

// closeIdle closes every connection with no mail transaction in
// progress, with "421 4.3.2" where the stream is not TLS.
func (s *Server) closeIdle() {
	s.mu.Lock()
	var idle []*trackedConn
	for c := range s.conns {
		if !c.busy.Load() {
			idle = append(idle, c)
		}
	}
	s.mu.Unlock()
	for _, c := range idle {
		s.closeConn(c)
	}
}

func (s *Server) closeConn(c *trackedConn) {
	if !c.tls.Load() {
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = c.Conn.Write([]byte("421 4.3.2 Service shutting down\r\n"))
	}
	_ = c.Close()
}

func (s *Server) closeAll() {
	s.mu.Lock()
	all := make([]*trackedConn, 0, len(s.conns))
	for c := range s.conns {
		all = append(all, c)
	}
	s.mu.Unlock()
	for _, c := range all {
		_ = c.Close()
	}
}

// tracked finds the tracked connection under a go-smtp connection (which
// may have wrapped it in TLS).
func (s *Server) tracked(c net.Conn) *trackedConn {
	for c != nil {
		switch v := c.(type) {
		case *trackedConn:
			return v
		case interface{ NetConn() net.Conn }: // *tls.Conn
			c = v.NetConn()
		default:
			return nil
		}
	}
	return nil
}

func remoteIP(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// authLimiter counts failed AUTH attempts per client IP.
type authLimiter struct {
	mu sync.Mutex
	m  map[string]*authFailures
}

type authFailures struct {
	n    int
	last time.Time
}

func newAuthLimiter() *authLimiter { return &authLimiter{m: make(map[string]*authFailures)} }

// fail records a failure and returns the number within the window.
func (a *authLimiter) fail(ip string, window time.Duration, now time.Time) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	f := a.m[ip]
	if f == nil || now.Sub(f.last) > window {
		f = &authFailures{}
		a.m[ip] = f
	}
	f.n++
	f.last = now
	// Forget stale entries now and then so the map stays small.
	if len(a.m) > 1024 {
		for k, v := range a.m {
			if now.Sub(v.last) > window {
				delete(a.m, k)
			}
		}
	}
	return f.n
}

func (a *authLimiter) blocked(ip string, max int, window time.Duration, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	f := a.m[ip]
	return f != nil && f.n >= max && now.Sub(f.last) <= window
}
