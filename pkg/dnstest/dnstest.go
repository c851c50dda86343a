// Package dnstest runs a real DNS server on loopback for tests.
//
// A Server is a miekg/dns server on 127.0.0.1:0 (UDP and TCP on the same
// port) answering from zones written as RFC 1035 §5 master-file text. It
// answers like a recursive resolver would: it follows CNAME chains inside
// its data (RFC 1034 §3.6.2), synthesises wildcard answers (RFC 4592),
// returns NODATA for names that exist without the asked type and for empty
// non-terminals, NXDOMAIN otherwise, and truncates UDP answers larger than
// the client's EDNS0 buffer (RFC 6891) so clients retry over TCP.
//
// Failures can be simulated per name (and optionally per type): SERVFAIL,
// REFUSED, or no answer at all (a timeout), and every answer can be delayed.
// Every DNS-dependent test in relayctl uses it; no test reaches the internet.
package dnstest

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Behaviour is a simulated failure for a name.
type Behaviour int

const (
	// Normal answers from the zone data.
	Normal Behaviour = iota
	// ServFail answers RCODE 2.
	ServFail
	// Refused answers RCODE 5.
	Refused
	// Timeout never answers.
	Timeout
)

type key struct {
	name  string
	qtype uint16 // 0 = any type
}

// Server is a running test DNS server. Its methods are safe for concurrent
// use while it serves.
type Server struct {
	addr string
	udp  *dns.Server
	tcp  *dns.Server

	mu         sync.RWMutex
	rrs        map[string][]dns.RR // lower-case owner name → records
	names      map[string]bool     // every owner name and its ancestors
	behaviours map[key]Behaviour
	delay      time.Duration
	nameDelay  map[string]time.Duration

	queries atomic.Int64
	logMu   sync.Mutex
	log     []string
}

// Start starts a server with the given zone text and stops it when the
// test ends. It fails the test if the zone does not parse.
func Start(t testing.TB, zone string) *Server {
	t.Helper()
	s, err := New(zone)
	if err != nil {
		t.Fatalf("dnstest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// New starts a server outside a test (benchmarks, scripts). Call Close.
func New(zone string) (*Server, error) {
	s := &Server{
		rrs:        map[string][]dns.RR{},
		names:      map[string]bool{},
		behaviours: map[key]Behaviour{},
		nameDelay:  map[string]time.Duration{},
	}
	if err := s.AddZone(zone); err != nil {
		return nil, err
	}
	pc, l, err := listenPair()
	if err != nil {
		return nil, err
	}
	s.addr = pc.LocalAddr().String()
	mux := dns.NewServeMux()
	mux.HandleFunc(".", s.serve)
	var wg sync.WaitGroup
	wg.Add(2)
	s.udp = &dns.Server{PacketConn: pc, Handler: mux, NotifyStartedFunc: wg.Done}
	s.tcp = &dns.Server{Listener: l, Handler: mux, NotifyStartedFunc: wg.Done}
	go s.udp.ActivateAndServe() //nolint:errcheck // returns on shutdown
	go s.tcp.ActivateAndServe() //nolint:errcheck
	wg.Wait()
	return s, nil
}

// listenPair opens UDP and TCP on the same free loopback port. The UDP
// port the kernel picks can be taken for TCP by another process (parallel
// test binaries do this), so it tries a few ports before giving up.
func listenPair() (net.PacketConn, net.Listener, error) {
	var lastErr error
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, fmt.Errorf("dnstest: listen udp: %w", err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			return pc, l, nil
		}
		pc.Close()
		lastErr = err
	}
	return nil, nil, fmt.Errorf("dnstest: listen tcp: %w", lastErr)
}

// Addr is the "127.0.0.1:port" address to give a resolver.
func (s *Server) Addr() string { return s.addr }

// Close stops the server.
func (s *Server) Close() {
	s.udp.Shutdown() //nolint:errcheck
	s.tcp.Shutdown() //nolint:errcheck
}

// AddZone adds the records in master-file text. Names without a trailing
// dot are relative to $ORIGIN (default: the root). The default TTL is 300.
func (s *Server) AddZone(zone string) error {
	zp := dns.NewZoneParser(strings.NewReader(zone), ".", "")
	zp.SetDefaultTTL(300)
	var rrs []dns.RR
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		rrs = append(rrs, rr)
	}
	if err := zp.Err(); err != nil {
		return fmt.Errorf("dnstest: zone: %w", err)
	}
	s.AddRR(rrs...)
	return nil
}

// AddRR adds records.
func (s *Server) AddRR(rrs ...dns.RR) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rr := range rrs {
		name := strings.ToLower(dns.Fqdn(rr.Header().Name))
		s.rrs[name] = append(s.rrs[name], rr)
		for n := name; ; {
			s.names[n] = true
			i, end := dns.NextLabel(n, 0)
			if end {
				break
			}
			n = n[i:]
		}
	}
}

// Remove deletes every record of qtype at name (0: all types).
func (s *Server) Remove(name string, qtype uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name = strings.ToLower(dns.Fqdn(name))
	var keep []dns.RR
	for _, rr := range s.rrs[name] {
		if qtype != 0 && rr.Header().Rrtype != qtype {
			keep = append(keep, rr)
		}
	}
	s.rrs[name] = keep
}

// Set makes queries for name (and, when qtype is not 0, only that type)
// fail the given way. Set(name, 0, Normal) clears it.
func (s *Server) Set(name string, qtype uint16, b Behaviour) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key{strings.ToLower(dns.Fqdn(name)), qtype}
	if b == Normal {
		delete(s.behaviours, k)
		return
	}
	s.behaviours[k] = b
}

// SetDelay delays every answer by d.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}

// SetNameDelay delays answers for one name by d (instead of the global delay).
func (s *Server) SetNameDelay(name string, d time.Duration) {
	s.mu.Lock()
	s.nameDelay[strings.ToLower(dns.Fqdn(name))] = d
	s.mu.Unlock()
}

// Queries returns how many queries the server received.
func (s *Server) Queries() int64 { return s.queries.Load() }

// Log returns "name TYPE" for every query received, in order.
func (s *Server) Log() []string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return append([]string(nil), s.log...)
}

func (s *Server) serve(w dns.ResponseWriter, r *dns.Msg) {
	s.queries.Add(1)
	if len(r.Question) != 1 {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeFormatError)
		w.WriteMsg(m) //nolint:errcheck
		return
	}
	q := r.Question[0]
	qname := strings.ToLower(q.Name)
	s.logMu.Lock()
	s.log = append(s.log, qname+" "+dns.TypeToString[q.Qtype])
	s.logMu.Unlock()

	s.mu.RLock()
	b, ok := s.behaviours[key{qname, q.Qtype}]
	if !ok {
		b = s.behaviours[key{qname, 0}]
	}
	delay, ok := s.nameDelay[qname]
	if !ok {
		delay = s.delay
	}
	s.mu.RUnlock()

	if delay > 0 {
		time.Sleep(delay)
	}
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = true
	switch b {
	case Timeout:
		return
	case ServFail:
		m.Rcode = dns.RcodeServerFailure
	case Refused:
		m.Rcode = dns.RcodeRefused
	default:
		s.answer(m, q)
	}
	if opt := r.IsEdns0(); opt != nil {
		m.SetEdns0(opt.UDPSize(), false)
	}
	if _, isUDP := w.RemoteAddr().(*net.UDPAddr); isUDP {
		size := dns.MinMsgSize
		if opt := r.IsEdns0(); opt != nil {
			size = int(opt.UDPSize())
		}
		m.Truncate(size)
	}
	w.WriteMsg(m) //nolint:errcheck
}

// answer fills m like a recursive resolver: CNAME chains followed,
// wildcards synthesised, NODATA vs NXDOMAIN told apart.
func (s *Server) answer(m *dns.Msg, q dns.Question) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	name := strings.ToLower(q.Name)
	owner := q.Name
	for hops := 0; hops < 16; hops++ {
		rrs, found := s.lookup(name)
		if !found {
			m.Rcode = dns.RcodeNameError // RFC 6604 §3: the rcode of the last name in the chain
			return
		}
		var cname *dns.CNAME
		matched := false
		for _, rr := range rrs {
			t := rr.Header().Rrtype
			if t == q.Qtype || q.Qtype == dns.TypeANY {
				c := dns.Copy(rr)
				c.Header().Name = owner
				m.Answer = append(m.Answer, c)
				matched = true
			} else if t == dns.TypeCNAME {
				cname = rr.(*dns.CNAME)
			}
		}
		if matched || cname == nil {
			return
		}
		c := dns.Copy(cname).(*dns.CNAME)
		c.Hdr.Name = owner
		m.Answer = append(m.Answer, c)
		name = strings.ToLower(cname.Target)
		owner = cname.Target
		for _, rr := range m.Answer[:len(m.Answer)-1] { // CNAME loop
			if strings.EqualFold(rr.Header().Name, owner) {
				return
			}
		}
	}
}

// lookup returns the records at name, or at a covering wildcard, and
// whether the name exists at all.
func (s *Server) lookup(name string) ([]dns.RR, bool) {
	if rrs, ok := s.rrs[name]; ok && len(rrs) > 0 {
		return rrs, true
	}
	if s.names[name] {
		return nil, true // empty non-terminal, or all records removed
	}
	// RFC 4592 §3.3.1: find the closest encloser, then its wildcard.
	for n := name; ; {
		i, end := dns.NextLabel(n, 0)
		if end {
			return nil, false
		}
		n = n[i:]
		if s.names[n] {
			if rrs, ok := s.rrs["*."+n]; ok && len(rrs) > 0 {
				return rrs, true
			}
			return nil, false
		}
	}
}
