package dnsbl

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
	"golang.org/x/net/idna"
)

// Range limits (without force): a /16 of IPv4 or a /112 of IPv6, 65,536
// addresses. MaxAddresses bounds every run, force or not: each address's
// results are kept in memory (about 1 KB per address and list at the
// peak), and no public list answers that many queries from one resolver.
const (
	MaxPrefix4   = 16
	MaxPrefix6   = 112
	MaxAddresses = 1 << 18
)

// ErrTarget is wrapped by every target parsing error.
var ErrTarget = errors.New("dnsbl: invalid target")

// Target is one thing to check: an address, a range of addresses, or a
// domain name.
type Target struct {
	Input  string       // as given
	Addr   netip.Addr   // an address (IPv4-mapped IPv6 is unmapped)
	Prefix netip.Prefix // a range (masked); Addr is invalid
	Domain string       // a domain name in A-label form, lower case, no trailing dot
}

// IsDomain reports whether t is a domain name.
func (t Target) IsDomain() bool { return t.Domain != "" }

// Size is the number of addresses t stands for (1 for an address or a
// domain; for a range, capped at MaxAddresses+1).
func (t Target) Size() int {
	if !t.Prefix.IsValid() {
		return 1
	}
	host := t.Prefix.Addr().BitLen() - t.Prefix.Bits()
	if host > 18 {
		return MaxAddresses + 1
	}
	return 1 << host
}

// Addrs returns every address of a range (or the one address).
func (t Target) Addrs() []netip.Addr {
	if !t.Prefix.IsValid() {
		if t.Addr.IsValid() {
			return []netip.Addr{t.Addr}
		}
		return nil
	}
	n := t.Size()
	out := make([]netip.Addr, 0, n)
	for a := t.Prefix.Addr(); len(out) < n && a.IsValid() && t.Prefix.Contains(a); a = a.Next() {
		out = append(out, a)
	}
	return out
}

// ParseTarget parses an IPv4 or IPv6 address, a CIDR range, or a domain
// name. Ranges larger than a /16 (IPv4) or /112 (IPv6) are refused unless
// force is set; ranges larger than MaxAddresses are always refused.
func ParseTarget(s string, force bool) (Target, error) {
	in := s
	s = strings.TrimSpace(s)
	if s == "" {
		return Target{}, fmt.Errorf("%w: empty target", ErrTarget)
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return Target{}, fmt.Errorf("%w: %q is not a CIDR range (want e.g. 192.0.2.0/24 or 2001:db8::/120)", ErrTarget, s)
		}
		if p.Addr().Zone() != "" {
			return Target{}, fmt.Errorf("%w: %q: a zoned address cannot be listed", ErrTarget, s)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		p = p.Masked()
		t := Target{Input: in, Prefix: p}
		limit := MaxPrefix4
		if p.Addr().Is6() {
			limit = MaxPrefix6
		}
		if p.Bits() < limit && !force {
			return Target{}, fmt.Errorf("%w: %s is larger than a /%d (%s addresses); use --force to check it anyway", ErrTarget, s, limit, countAddrs(p))
		}
		if t.Size() > MaxAddresses {
			return Target{}, fmt.Errorf("%w: %s holds %s addresses, more than the %d one run can check", ErrTarget, s, countAddrs(p), MaxAddresses)
		}
		return t, nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return Target{}, fmt.Errorf("%w: %q: a zoned address cannot be listed", ErrTarget, s)
		}
		return Target{Input: in, Addr: a.Unmap()}, nil
	}
	d, err := ParseDomain(s)
	if err != nil {
		return Target{}, err
	}
	return Target{Input: in, Domain: d}, nil
}

func countAddrs(p netip.Prefix) string {
	n := new(big.Int).Lsh(big.NewInt(1), uint(p.Addr().BitLen()-p.Bits()))
	return n.String()
}

// ParseDomain checks a domain name target and returns it in lower-case
// A-label form without the trailing dot. It must have at least two labels
// and a top-level label that is not all digits (RFC 3696 §2), so that
// "1.2.3" or "999.1.1.1" are reported as bad addresses, not queried as
// names.
func ParseDomain(s string) (string, error) {
	s = strings.TrimSuffix(strings.TrimSpace(s), ".")
	if looksNumeric(s) {
		return "", fmt.Errorf("%w: %q is not a valid IP address", ErrTarget, s)
	}
	if strings.ContainsAny(s, ":") {
		return "", fmt.Errorf("%w: %q is not a valid IP address or domain name", ErrTarget, s)
	}
	a := s
	if strings.IndexFunc(s, func(r rune) bool { return r >= 0x80 }) >= 0 { // IDNA2008 (RFC 5891) for U-labels only
		var err error
		if a, err = idna.Lookup.ToASCII(s); err != nil {
			return "", fmt.Errorf("%w: %q is not a valid domain name: %v", ErrTarget, s, err)
		}
	}
	a = strings.ToLower(a)
	labels := strings.Split(a, ".")
	if len(labels) < 2 {
		return "", fmt.Errorf("%w: %q is not a fully qualified domain name (want e.g. example.com)", ErrTarget, s)
	}
	if _, ok := dns.IsDomainName(a); !ok || len(a) > 200 {
		return "", fmt.Errorf("%w: %q is not a valid domain name", ErrTarget, s)
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || strings.HasPrefix(l, "-") || strings.HasSuffix(l, "-") ||
			strings.IndexFunc(l, func(r rune) bool {
				return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_')
			}) >= 0 {
			return "", fmt.Errorf("%w: %q is not a valid domain name", ErrTarget, s)
		}
	}
	return a, nil
}

// looksNumeric: only digits and dots (a mistyped IPv4 address).
func looksNumeric(s string) bool {
	return s != "" && strings.Trim(s, "0123456789.") == ""
}

// ReadTargets reads targets one per line from r: blank lines and lines
// starting with "#" are skipped, and anything after " #" is a comment.
// Errors name the line.
func ReadTargets(r io.Reader, name string, force bool) ([]Target, error) {
	var out []Target
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		t, err := ParseTarget(line, force)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, n, err)
		}
		out = append(out, t)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return out, nil
}

// QueryName is the name to look up for an IP in an IP list (RFC 5782
// §2.1: IPv4 octets reversed; §2.4: IPv6 as 32 nibbles reversed) or a
// domain in a domain list (§3: the name itself), under zone.
func QueryName(zone string, addr netip.Addr) string {
	addr = addr.Unmap()
	if addr.Is4() {
		o := addr.As4()
		return fmt.Sprintf("%d.%d.%d.%d.%s", o[3], o[2], o[1], o[0], zone)
	}
	return nibbles(zone, addr)
}

// DomainQueryName is the name to look up for a domain in a domain list
// (RFC 5782 §3).
func DomainQueryName(zone, domain string) string { return domain + "." + zone }
