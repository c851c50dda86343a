// Package dnsclient is the DNS layer every relayctl check uses.
//
// It asks a recursive resolver (RFC 1034/1035) over UDP with EDNS0
// (RFC 6891), retries over TCP when the answer is truncated (RFC 7766 §5),
// applies a per-query timeout with one retry on timeout, and classifies
// every answer so callers can tell NXDOMAIN from NOERROR-with-no-data
// (RFC 2308 §2) from a server failure or a timeout: SPF (RFC 7208 §4.6.4)
// counts the first two as void lookups and the last two as temperror.
//
// Every query is reported to an optional Hook with its name, type, rcode,
// outcome and duration, so a command can show what it asked.
package dnsclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Outcome classifies the answer to one query.
type Outcome int

const (
	// OutcomeAnswer is NOERROR with at least one record of the asked type.
	OutcomeAnswer Outcome = iota
	// OutcomeNoData is NOERROR without records of the asked type (RFC 2308 §2.2).
	OutcomeNoData
	// OutcomeNXDomain is RCODE 3: the name does not exist (RFC 2308 §2.1).
	OutcomeNXDomain
	// OutcomeServFail is SERVFAIL, REFUSED or any other error RCODE.
	OutcomeServFail
	// OutcomeTimeout means no answer arrived in time, after the retry.
	OutcomeTimeout
	// OutcomeNetwork is any other transport failure (connection refused…).
	OutcomeNetwork
)

func (o Outcome) String() string {
	switch o {
	case OutcomeAnswer:
		return "answer"
	case OutcomeNoData:
		return "nodata"
	case OutcomeNXDomain:
		return "nxdomain"
	case OutcomeServFail:
		return "servfail"
	case OutcomeTimeout:
		return "timeout"
	case OutcomeNetwork:
		return "network"
	}
	return "unknown"
}

// Void reports whether the outcome is a "void lookup" in the sense of
// RFC 7208 §4.6.4: NOERROR with no answers, or NXDOMAIN.
func (o Outcome) Void() bool { return o == OutcomeNoData || o == OutcomeNXDomain }

// Sentinel errors; a *QueryError wraps exactly one of them.
var (
	ErrServFail = errors.New("dns: server failure")
	ErrTimeout  = errors.New("dns: timeout")
	ErrNetwork  = errors.New("dns: network error")
	ErrInvalid  = errors.New("dns: invalid name")
)

// QueryError is returned when a query could not be answered: the server
// failed, refused, did not answer in time, or could not be reached. It
// names the server so a user knows which resolver to look at.
type QueryError struct {
	Name    string
	Type    uint16
	Server  string
	Rcode   int // -1 when there was no answer at all
	Outcome Outcome
	Err     error // one of the sentinel errors
	Cause   error // the transport error, if any
}

func (e *QueryError) Error() string {
	what := e.Outcome.String()
	if e.Rcode > 0 {
		what = dns.RcodeToString[e.Rcode]
	}
	msg := fmt.Sprintf("dns: %s %s: %s from %s", strings.TrimSuffix(e.Name, "."), dns.TypeToString[e.Type], what, e.Server)
	if e.Outcome == OutcomeTimeout {
		msg = fmt.Sprintf("dns: %s %s: no answer from %s (timeout)", strings.TrimSuffix(e.Name, "."), dns.TypeToString[e.Type], e.Server)
	}
	if e.Outcome == OutcomeNetwork && e.Cause != nil {
		msg += ": " + e.Cause.Error()
	}
	return msg
}

func (e *QueryError) Unwrap() []error { return []error{e.Err, e.Cause} }

// Response is a classified answer. It is returned for NOERROR and NXDOMAIN;
// other outcomes come back as a *QueryError.
type Response struct {
	Name     string // fully qualified query name
	Type     uint16
	Rcode    int
	Outcome  Outcome
	Answer   []dns.RR // the whole answer section, CNAMEs included
	Duration time.Duration
	Msg      *dns.Msg
}

// Records returns the answer records of the asked type (CNAMEs that led
// to them are dropped).
func (r *Response) Records() []dns.RR {
	if r == nil {
		return nil
	}
	var out []dns.RR
	for _, rr := range r.Answer {
		if rr.Header().Rrtype == r.Type {
			out = append(out, rr)
		}
	}
	return out
}

// CNAMEs returns the CNAME chain in the answer, in order.
func (r *Response) CNAMEs() []*dns.CNAME {
	if r == nil {
		return nil
	}
	var out []*dns.CNAME
	for _, rr := range r.Answer {
		if c, ok := rr.(*dns.CNAME); ok && r.Type != dns.TypeCNAME {
			out = append(out, c)
		}
	}
	return out
}

// Query describes one query for the Hook.
type Query struct {
	Name     string        `json:"name"`
	Type     string        `json:"type"`
	Server   string        `json:"server"`
	Rcode    string        `json:"rcode,omitempty"`
	Outcome  string        `json:"outcome"`
	Duration time.Duration `json:"duration_ns"`
	TCP      bool          `json:"tcp,omitempty"`
}

// Resolver is what the checks consume; *Client implements it and tests may
// wrap it.
type Resolver interface {
	Exchange(ctx context.Context, name string, qtype uint16) (*Response, error)
}

var _ Resolver = (*Client)(nil)

// Client is a stub resolver. The zero value is not usable: use New.
type Client struct {
	servers []string
	timeout time.Duration
	retries int
	hook    func(Query)
	udp     *dns.Client
	tcp     *dns.Client

	poolMu sync.Mutex
	pool   map[string][]*udpConn // idle UDP sockets per server
}

// UDP sockets are reused between queries (saving a socket, connect and
// close per query in bulk runs) but each serves at most udpConnUses
// queries, so the source port keeps changing as RFC 5452 §9.2 asks, and
// at most udpIdleMax idle sockets per server are kept.
const (
	udpConnUses = 64
	udpIdleMax  = 256
)

type udpConn struct {
	*dns.Conn
	uses int
}

// Option configures a Client.
type Option func(*Client)

// WithTimeout sets the per-query timeout (default 5s).
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithRetries sets how many times a timed-out query is repeated (default 1).
func WithRetries(n int) Option { return func(c *Client) { c.retries = n } }

// WithHook registers a function called after every query (from any goroutine).
func WithHook(h func(Query)) Option { return func(c *Client) { c.hook = h } }

// New returns a client asking the given servers ("host:port", tried in order).
func New(servers []string, opts ...Option) (*Client, error) {
	if len(servers) == 0 {
		return nil, errors.New("dnsclient: no DNS server configured")
	}
	c := &Client{timeout: 5 * time.Second, retries: 1}
	for _, s := range servers {
		hp, err := NormalizeServer(s)
		if err != nil {
			return nil, err
		}
		c.servers = append(c.servers, hp)
	}
	for _, o := range opts {
		o(c)
	}
	c.udp = &dns.Client{Net: "udp", Timeout: c.timeout, UDPSize: 1232}
	c.tcp = &dns.Client{Net: "tcp", Timeout: c.timeout}
	return c, nil
}

// NormalizeServer checks a "host[:port]" resolver address and adds port 53.
func NormalizeServer(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("dnsclient: empty resolver address")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		// No port: a bare IPv4/IPv6 address or host name.
		host, port = strings.Trim(s, "[]"), "53"
	}
	if host == "" {
		return "", fmt.Errorf("dnsclient: invalid resolver address %q", s)
	}
	if _, err := net.LookupPort("udp", port); err != nil {
		return "", fmt.Errorf("dnsclient: invalid resolver port in %q", s)
	}
	return net.JoinHostPort(host, port), nil
}

// SystemServers reads the resolvers configured in resolv.conf (usually
// /etc/resolv.conf).
func SystemServers(path string) ([]string, error) {
	cfg, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("dnsclient: reading %s: %w", path, err)
	}
	var out []string
	for _, s := range cfg.Servers {
		out = append(out, net.JoinHostPort(s, cfg.Port))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("dnsclient: no nameserver in %s", path)
	}
	return out, nil
}

// Servers returns the servers the client asks.
func (c *Client) Servers() []string { return append([]string(nil), c.servers...) }

// Exchange asks for name/qtype and classifies the answer. NOERROR and
// NXDOMAIN return a *Response and a nil error; SERVFAIL, REFUSED, other
// rcodes, timeouts and network errors return a *QueryError.
func (c *Client) Exchange(ctx context.Context, name string, qtype uint16) (*Response, error) {
	fqdn := dns.Fqdn(name)
	if _, ok := dns.IsDomainName(fqdn); !ok || len(fqdn) > 254 {
		return nil, fmt.Errorf("%w: %q", ErrInvalid, name)
	}
	var lastErr *QueryError
	for _, server := range c.servers {
		resp, qerr := c.exchangeServer(ctx, server, fqdn, qtype)
		if qerr == nil {
			return resp, nil
		}
		lastErr = qerr
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

func (c *Client) exchangeServer(ctx context.Context, server, fqdn string, qtype uint16) (*Response, *QueryError) {
	m := new(dns.Msg)
	m.SetQuestion(fqdn, qtype)
	m.RecursionDesired = true
	m.SetEdns0(1232, false) // RFC 6891; 1232 avoids fragmentation (DNS flag day 2020)

	var (
		in    *dns.Msg
		err   error
		rtt   time.Duration
		tcp   bool
		start = time.Now()
	)
	for attempt := 0; attempt <= c.retries; attempt++ {
		in, rtt, err = c.exchangeUDP(ctx, m, server)
		if err == nil && in.Truncated { // RFC 7766 §5: retry over TCP
			tcp = true
			in, rtt, err = c.tcp.ExchangeContext(ctx, m, server)
		}
		if err == nil || !isTimeout(err) || ctx.Err() != nil {
			break
		}
	}
	_ = rtt
	dur := time.Since(start)
	q := Query{Name: fqdn, Type: dns.TypeToString[qtype], Server: server, Duration: dur, TCP: tcp}

	if err != nil {
		out := OutcomeNetwork
		sentinel := ErrNetwork
		if isTimeout(err) || errors.Is(err, context.DeadlineExceeded) {
			out, sentinel = OutcomeTimeout, ErrTimeout
		}
		q.Outcome = out.String()
		c.report(q)
		return nil, &QueryError{Name: fqdn, Type: qtype, Server: server, Rcode: -1, Outcome: out, Err: sentinel, Cause: err}
	}
	q.Rcode = dns.RcodeToString[in.Rcode]
	resp := &Response{Name: fqdn, Type: qtype, Rcode: in.Rcode, Answer: in.Answer, Duration: dur, Msg: in}
	switch in.Rcode {
	case dns.RcodeSuccess:
		resp.Outcome = OutcomeNoData
		if len(resp.Records()) > 0 || (qtype == dns.TypeCNAME && len(in.Answer) > 0) {
			resp.Outcome = OutcomeAnswer
		}
	case dns.RcodeNameError:
		resp.Outcome = OutcomeNXDomain
	default:
		q.Outcome = OutcomeServFail.String()
		c.report(q)
		return nil, &QueryError{Name: fqdn, Type: qtype, Server: server, Rcode: in.Rcode, Outcome: OutcomeServFail, Err: ErrServFail}
	}
	q.Outcome = resp.Outcome.String()
	c.report(q)
	return resp, nil
}

// exchangeUDP asks over a pooled UDP socket. A socket that saw an error
// (timeout included: a late answer could still arrive on it) is closed,
// not reused. miekg/dns skips answers whose ID does not match; an answer
// to another question (a late reply with a colliding ID) is refused here.
func (c *Client) exchangeUDP(ctx context.Context, m *dns.Msg, server string) (*dns.Msg, time.Duration, error) {
	co, err := c.getUDP(ctx, server)
	if err != nil {
		return nil, 0, err
	}
	in, rtt, err := c.udp.ExchangeWithConnContext(ctx, m, co.Conn)
	if err == nil && !sameQuestion(in, m) {
		err = fmt.Errorf("answer for another question (%v)", in.Question)
	}
	if err != nil {
		co.Close() //nolint:errcheck // already failed
		return nil, rtt, err
	}
	c.putUDP(server, co)
	return in, rtt, nil
}

func sameQuestion(in, m *dns.Msg) bool {
	if len(in.Question) != 1 || len(m.Question) != 1 {
		return false
	}
	a, b := in.Question[0], m.Question[0]
	return a.Qtype == b.Qtype && a.Qclass == b.Qclass && sameName(a.Name, b.Name)
}

// sameName compares names in wire form: an unpacked name is in escaped
// presentation form ("a\ b"), the name we sent may hold the raw bytes.
func sameName(x, y string) bool {
	if strings.EqualFold(x, y) {
		return true
	}
	bx, by := make([]byte, 256), make([]byte, 256)
	nx, errx := dns.PackDomainName(x, bx, 0, nil, false)
	ny, erry := dns.PackDomainName(y, by, 0, nil, false)
	if errx != nil || erry != nil || nx != ny {
		return false
	}
	for i := range nx { // RFC 4343: ASCII case-insensitive, other bytes exact
		if lower(bx[i]) != lower(by[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func (c *Client) getUDP(ctx context.Context, server string) (*udpConn, error) {
	c.poolMu.Lock()
	if idle := c.pool[server]; len(idle) > 0 {
		co := idle[len(idle)-1]
		c.pool[server] = idle[:len(idle)-1]
		c.poolMu.Unlock()
		return co, nil
	}
	c.poolMu.Unlock()
	conn, err := c.udp.DialContext(ctx, server)
	if err != nil {
		return nil, err
	}
	return &udpConn{Conn: conn}, nil
}

func (c *Client) putUDP(server string, co *udpConn) {
	co.uses++
	c.poolMu.Lock()
	if co.uses < udpConnUses && len(c.pool[server]) < udpIdleMax {
		if c.pool == nil {
			c.pool = map[string][]*udpConn{}
		}
		c.pool[server] = append(c.pool[server], co)
		co = nil
	}
	c.poolMu.Unlock()
	if co != nil {
		co.Close() //nolint:errcheck // retired
	}
}

// Close closes the idle UDP sockets the client keeps for reuse. The
// client stays usable.
func (c *Client) Close() error {
	c.poolMu.Lock()
	defer c.poolMu.Unlock()
	for _, idle := range c.pool {
		for _, co := range idle {
			co.Close() //nolint:errcheck // idle
		}
	}
	c.pool = nil
	return nil
}

func (c *Client) report(q Query) {
	if c.hook != nil {
		c.hook(q)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// LookupTXT returns the TXT records at name, each as the concatenation of
// its character-strings (RFC 7208 §3.3), with the response for inspection.
func LookupTXT(ctx context.Context, r Resolver, name string) ([]string, *Response, error) {
	resp, err := r.Exchange(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, nil, err
	}
	var out []string
	for _, rr := range resp.Records() {
		var b strings.Builder
		for _, part := range rr.(*dns.TXT).Txt {
			b.WriteString(UnescapeTXT(part))
		}
		out = append(out, b.String())
	}
	return out, resp, nil
}

// UnescapeTXT turns a character-string as miekg/dns holds it (presentation
// format: `\"`, `\\`, `\DDD`) back into its raw bytes, so that callers
// see exactly what the zone published (RFC 1035 §5.1).
func UnescapeTXT(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b = append(b, c)
			continue
		}
		if i+3 < len(s) && isDigit(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) {
			n := int(s[i+1]-'0')*100 + int(s[i+2]-'0')*10 + int(s[i+3]-'0')
			if n <= 255 {
				b = append(b, byte(n))
				i += 3
				continue
			}
		}
		b = append(b, s[i+1])
		i++
	}
	return string(b)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// LookupIP returns the addresses of type A or AAAA at name.
func LookupIP(ctx context.Context, r Resolver, name string, qtype uint16) ([]net.IP, *Response, error) {
	resp, err := r.Exchange(ctx, name, qtype)
	if err != nil {
		return nil, nil, err
	}
	var out []net.IP
	for _, rr := range resp.Records() {
		switch v := rr.(type) {
		case *dns.A:
			out = append(out, v.A)
		case *dns.AAAA:
			out = append(out, v.AAAA)
		}
	}
	return out, resp, nil
}

// LookupMX returns the MX records at name, in the order received.
func LookupMX(ctx context.Context, r Resolver, name string) ([]*dns.MX, *Response, error) {
	resp, err := r.Exchange(ctx, name, dns.TypeMX)
	if err != nil {
		return nil, nil, err
	}
	var out []*dns.MX
	for _, rr := range resp.Records() {
		out = append(out, rr.(*dns.MX))
	}
	return out, resp, nil
}

// LookupPTR returns the PTR names for an IP address (RFC 1035 §3.5,
// RFC 3596 §2.5).
func LookupPTR(ctx context.Context, r Resolver, ip net.IP) ([]string, *Response, error) {
	rev, err := dns.ReverseAddr(ip.String())
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	resp, err := r.Exchange(ctx, rev, dns.TypePTR)
	if err != nil {
		return nil, nil, err
	}
	var out []string
	for _, rr := range resp.Records() {
		out = append(out, rr.(*dns.PTR).Ptr)
	}
	return out, resp, nil
}

// TXTFunc adapts a Resolver to go-msgauth's LookupTXT hook, which wants
// net.LookupTXT semantics: NXDOMAIN and no-data are a *net.DNSError with
// IsNotFound set, failures a temporary *net.DNSError.
func TXTFunc(ctx context.Context, r Resolver) func(string) ([]string, error) {
	return func(name string) ([]string, error) {
		txts, resp, err := LookupTXT(ctx, r, name)
		if err != nil {
			var qe *QueryError
			server := ""
			if errors.As(err, &qe) {
				server = qe.Server
			}
			return nil, &net.DNSError{Err: err.Error(), Name: name, Server: server, IsTemporary: true, IsTimeout: errors.Is(err, ErrTimeout)}
		}
		if resp.Outcome != OutcomeAnswer {
			return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
		}
		return txts, nil
	}
}

// Recorder collects the queries a Client made; its Hook method is safe for
// concurrent use. Pass rec.Hook to WithHook.
type Recorder struct {
	mu      sync.Mutex
	queries []Query
}

// Hook records q.
func (r *Recorder) Hook(q Query) {
	r.mu.Lock()
	r.queries = append(r.queries, q)
	r.mu.Unlock()
}

// Queries returns a copy of what was recorded so far.
func (r *Recorder) Queries() []Query {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Query(nil), r.queries...)
}
