package delivery

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sort"
	"strconv"
	"strings"

	"github.com/miekg/dns"

	"github.com/relayctl/relayctl/pkg/dnsclient"
)

// target is one host to try, with its addresses in the order to try them.
type target struct {
	Host  string   // MX name (or route host) for TLS SNI and logs
	Addrs []string // "ip:port", IPv6 first then IPv4
	v4    int      // index of the first IPv4 address in Addrs
	route *Route   // settings of a configured route, nil for MX hosts
	// source and hello are the sending identity of the message's stream
	// (Config.Identity): local address and EHLO name; "" the defaults.
	source, hello string
}

// TLS policies of a Route.
const (
	TLSOpportunistic = "opportunistic" // STARTTLS when offered (the default)
	TLSRequire       = "require"       // STARTTLS required, certificate verified
	TLSImplicit      = "implicit"      // TLS from the first byte (port 465, RFC 8314)
	TLSNone          = "none"          // never STARTTLS
)

// Route is a transport-map entry with its own settings (a smarthost that
// wants AUTH, implicit TLS…).
type Route struct {
	Addr string // "host:port"
	// TLS is one of the TLS* policies; "" → opportunistic (or require,
	// when Config.RequireTLS).
	TLS string
	// Username and Password authenticate with AUTH PLAIN (RFC 4954),
	// only ever over TLS or to a loopback address.
	Username, Password string
}

// failure is a reason no delivery could be attempted or completed.
type failure struct {
	Permanent bool
	Code      int    // SMTP reply code, 0 when none (DNS, network)
	Enhanced  string // RFC 3463 code
	Text      string // reply text or error
	Host, IP  string
	TLS       bool
}

func (f *failure) response() string {
	if f.Code != 0 {
		if f.Enhanced != "" {
			return fmt.Sprintf("%d %s %s", f.Code, f.Enhanced, f.Text)
		}
		return fmt.Sprintf("%d %s", f.Code, f.Text)
	}
	return f.Text
}

func tempFail(enh, format string, args ...any) *failure {
	return &failure{Enhanced: enh, Text: fmt.Sprintf(format, args...)}
}

func permFail(enh, format string, args ...any) *failure {
	return &failure{Permanent: true, Enhanced: enh, Text: fmt.Sprintf(format, args...)}
}

// domainOf returns the lower-cased domain of an address, "" if none.
func domainOf(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 || i == len(addr)-1 {
		return ""
	}
	return strings.ToLower(strings.TrimSuffix(addr[i+1:], "."))
}

// route returns the hosts to try for a recipient domain: the configured
// route, else the MX hosts (RFC 5321 §5.1).
func (d *deliverer) route(ctx context.Context, domain string) ([]target, *failure) {
	for _, k := range []string{domain, "*"} {
		if r, ok := d.cfg.RouteSettings[k]; ok && r.Addr != "" {
			return d.fixedRoute(ctx, r.Addr, &r)
		}
		if hp, ok := d.cfg.Routes[k]; ok && hp != "" {
			return d.fixedRoute(ctx, hp, nil)
		}
	}
	if d.cfg.Resolver == nil {
		return nil, tempFail("4.3.5", "no DNS resolver configured")
	}
	if strings.HasPrefix(domain, "[") && strings.HasSuffix(domain, "]") {
		// Address literal (RFC 5321 §4.1.3).
		lit := strings.TrimPrefix(strings.Trim(domain, "[]"), "IPv6:")
		ip := net.ParseIP(lit)
		if ip == nil {
			return nil, permFail("5.1.2", "bad address literal %s", domain)
		}
		return []target{mkTarget(domain, []net.IP{ip}, d.port())}, nil
	}
	if _, ok := dns.IsDomainName(domain); !ok || domain == "" {
		return nil, permFail("5.1.2", "bad destination domain %q", domain)
	}
	mxs, resp, err := dnsclient.LookupMX(ctx, d.cfg.Resolver, domain)
	if err != nil {
		if errors.Is(err, dnsclient.ErrInvalid) {
			return nil, permFail("5.1.2", "MX lookup for %s: %v", domain, err)
		}
		return nil, tempFail("4.4.3", "MX lookup for %s: %v", domain, err) // DNS trouble: defer
	}
	if resp.Outcome == dnsclient.OutcomeNXDomain {
		return nil, permFail("5.1.2", "domain %s does not exist (NXDOMAIN)", domain)
	}
	type mxHost struct {
		name string
		pref uint16
		r    float64
	}
	var hosts []mxHost
	implicit := false
	for _, mx := range mxs {
		if mx.Mx == "." {
			continue
		}
		hosts = append(hosts, mxHost{strings.TrimSuffix(strings.ToLower(mx.Mx), "."), mx.Preference, rand.Float64()})
	}
	if len(hosts) == 0 && len(mxs) > 0 {
		// RFC 7505 §3: a single MX with the root as exchange: no mail.
		return nil, permFail("5.1.10", "domain %s does not accept mail (null MX, RFC 7505)", domain)
	}
	if len(hosts) == 0 {
		// RFC 5321 §5.1: no MX, the domain itself is the implicit MX.
		hosts = []mxHost{{name: domain}}
		implicit = true
	}
	// Preference order; equal preferences in random order (RFC 5321 §5.1).
	sort.SliceStable(hosts, func(i, j int) bool {
		if hosts[i].pref != hosts[j].pref {
			return hosts[i].pref < hosts[j].pref
		}
		return hosts[i].r < hosts[j].r
	})
	// RFC 5321 §5.1: if we are one of the MX hosts, only the more
	// preferred ones may be tried; if there are none, the mail loops.
	for i, h := range hosts {
		if strings.EqualFold(h.name, d.cfg.Hostname) && !implicit {
			hosts = hosts[:i]
			for len(hosts) > 0 && hosts[len(hosts)-1].pref >= h.pref {
				hosts = hosts[:len(hosts)-1]
			}
			if len(hosts) == 0 {
				return nil, permFail("5.4.6", "mail for %s loops back to myself (%s is its best MX)", domain, d.cfg.Hostname)
			}
			break
		}
	}
	var out []target
	var tempErr error
	for _, h := range hosts {
		ips, err := d.lookupHost(ctx, h.name)
		if err != nil {
			tempErr = err
			continue
		}
		if len(ips) > 0 {
			out = append(out, mkTarget(h.name, ips, d.port()))
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	if tempErr != nil {
		return nil, tempFail("4.4.3", "address lookup for the mail hosts of %s: %v", domain, tempErr)
	}
	if implicit {
		return nil, permFail("5.1.2", "domain %s has no MX and no address records", domain)
	}
	// The MX hosts have no addresses: a misconfiguration that is often
	// fixed soon; keep trying until the lifetime ends.
	return nil, tempFail("4.4.4", "the mail hosts of %s have no address records", domain)
}

func (d *deliverer) port() int {
	if d.cfg.Port > 0 {
		return d.cfg.Port
	}
	return 25
}

// lookupHost returns the IPv6 then IPv4 addresses of name; an error only
// when a lookup failed temporarily and nothing was found.
func (d *deliverer) lookupHost(ctx context.Context, name string) ([]net.IP, error) {
	if ip := net.ParseIP(name); ip != nil {
		return []net.IP{ip}, nil
	}
	var out []net.IP
	var firstErr error
	for _, qt := range []uint16{dns.TypeAAAA, dns.TypeA} {
		if d.cfg.Resolver == nil {
			ips, err := net.DefaultResolver.LookupIP(ctx, map[uint16]string{dns.TypeAAAA: "ip6", dns.TypeA: "ip4"}[qt], name)
			if err != nil && firstErr == nil {
				firstErr = err
			}
			out = append(out, ips...)
			continue
		}
		ips, _, err := dnsclient.LookupIP(ctx, d.cfg.Resolver, name, qt)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		out = append(out, ips...)
	}
	if len(out) == 0 && firstErr != nil {
		var qe *dnsclient.QueryError
		if d.cfg.Resolver == nil || errors.As(firstErr, &qe) {
			return nil, firstErr
		}
	}
	return out, nil
}

func mkTarget(host string, ips []net.IP, port int) target {
	t := target{Host: host}
	var v4 []string
	for _, ip := range ips {
		a := net.JoinHostPort(ip.String(), strconv.Itoa(port))
		if ip.To4() != nil {
			v4 = append(v4, a)
		} else {
			t.Addrs = append(t.Addrs, a)
		}
	}
	t.v4 = len(t.Addrs)
	t.Addrs = append(t.Addrs, v4...)
	return t
}

// fixedRoute resolves a "host:port" route (smarthost, test lab).
func (d *deliverer) fixedRoute(ctx context.Context, hp string, r *Route) ([]target, *failure) {
	host, portS, err := net.SplitHostPort(hp)
	if err != nil {
		host, portS = hp, strconv.Itoa(d.port())
	}
	port, err := strconv.Atoi(portS)
	if err != nil || port <= 0 || port > 65535 {
		return nil, tempFail("4.3.5", "bad route %q: port", hp)
	}
	ips, err := d.lookupHost(ctx, host)
	if err != nil {
		return nil, tempFail("4.4.3", "route %s: %v", hp, err)
	}
	if len(ips) == 0 {
		return nil, tempFail("4.4.4", "route %s: host has no addresses", hp)
	}
	t := mkTarget(host, ips, port)
	t.route = r
	return []target{t}, nil
}
