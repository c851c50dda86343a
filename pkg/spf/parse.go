package spf

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Record is a parsed SPF record (RFC 7208 §4.6, §12).
type Record struct {
	// Raw is the record text as published (strings already joined).
	Raw string
	// Mechanisms in evaluation order.
	Mechanisms []Mechanism
	// Redirect and Exp are the raw domain-specs of the redirect= and
	// exp= modifiers (RFC 7208 §6), "" when absent.
	Redirect, Exp string
	// Modifiers holds every modifier in order, unknown ones included
	// (RFC 7208 §6: unknown modifiers are ignored but must be valid).
	Modifiers []Modifier
}

// Mechanism is one directive: a qualifier and a mechanism (RFC 7208 §4.6.2, §5).
type Mechanism struct {
	Qualifier byte   // '+', '-', '~', '?'
	Kind      string // "all","include","a","mx","ptr","ip4","ip6","exists"
	Domain    string // raw domain-spec (may hold macros), "" when absent
	Net       *net.IPNet
	// Prefix4 and Prefix6 are the dual-cidr-length of a and mx (-1 when
	// absent).
	Prefix4, Prefix6 int
	// Term is the term as written; Pos its byte offset in Record.Raw.
	Term string
	Pos  int
}

// Modifier is a name=value term (RFC 7208 §6).
type Modifier struct {
	Name  string // lower-cased
	Value string // raw macro-string
	Term  string
	Pos   int
}

// CausesLookup reports whether the mechanism counts against the limit of
// 10 DNS-querying terms (RFC 7208 §4.6.4).
func (m Mechanism) CausesLookup() bool {
	switch m.Kind {
	case "include", "a", "mx", "ptr", "exists":
		return true
	}
	return false
}

// Result maps the qualifier to the result it produces on a match
// (RFC 7208 §4.6.2).
func (m Mechanism) Result() Result {
	switch m.Qualifier {
	case '-':
		return Fail
	case '~':
		return SoftFail
	case '?':
		return Neutral
	}
	return Pass
}

// String is the term as written.
func (m Mechanism) String() string { return m.Term }

// SyntaxError reports a record that does not follow the grammar of
// RFC 7208 §12. Pos is the byte offset of Term in the record.
type SyntaxError struct {
	Term string
	Pos  int
	Msg  string
}

func (e *SyntaxError) Error() string {
	if e.Term == "" {
		return fmt.Sprintf("spf: syntax error at offset %d: %s", e.Pos, e.Msg)
	}
	return fmt.Sprintf("spf: syntax error in term %q at offset %d: %s", e.Term, e.Pos, e.Msg)
}

// IsSPF reports whether a TXT record is an SPF version 1 record: it
// begins with "v=spf1" (case-insensitive) followed by a space or the end
// (RFC 7208 §4.5).
func IsSPF(txt string) bool {
	if len(txt) < 6 || !strings.EqualFold(txt[:6], "v=spf1") {
		return false
	}
	return len(txt) == 6 || txt[6] == ' '
}

// Parse parses an SPF record to the full grammar of RFC 7208 §12,
// macros included. It returns a *SyntaxError naming the offending term
// and its position.
func Parse(record string) (*Record, error) {
	if !IsSPF(record) {
		return nil, &SyntaxError{Pos: 0, Msg: `record does not start with "v=spf1"`}
	}
	r := &Record{Raw: record}
	pos := 6
	for pos < len(record) {
		if record[pos] == ' ' { // terms = *( 1*SP ( directive / modifier ) )
			pos++
			continue
		}
		end := strings.IndexByte(record[pos:], ' ')
		if end < 0 {
			end = len(record)
		} else {
			end += pos
		}
		term := record[pos:end]
		if err := r.parseTerm(term, pos); err != nil {
			return nil, err
		}
		pos = end
	}
	return r, nil
}

func (r *Record) parseTerm(term string, pos int) error {
	serr := func(format string, args ...any) error {
		return &SyntaxError{Term: term, Pos: pos, Msg: fmt.Sprintf(format, args...)}
	}
	for i := 0; i < len(term); i++ {
		if c := term[i]; c < 0x21 || c > 0x7e { // RFC 7208 §3.1: 7-bit ASCII, no controls
			return serr("invalid character 0x%02x", c)
		}
	}
	// modifier = name "=" macro-string; name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." )
	if eq := strings.IndexByte(term, '='); eq > 0 && isName(term[:eq]) {
		name, value := strings.ToLower(term[:eq]), term[eq+1:]
		switch name {
		case "redirect", "exp": // RFC 7208 §6: each at most once
			for _, m := range r.Modifiers {
				if m.Name == name {
					return serr("%s= appears more than once", name)
				}
			}
			if err := checkDomainSpec(value, false); err != nil {
				return serr("%v", err)
			}
			if name == "redirect" {
				r.Redirect = value
			} else {
				r.Exp = value
			}
		default:
			if _, err := parseMacroString(value, false); err != nil {
				return serr("%v", err)
			}
		}
		r.Modifiers = append(r.Modifiers, Modifier{Name: name, Value: value, Term: term, Pos: pos})
		return nil
	}

	m := Mechanism{Qualifier: '+', Prefix4: -1, Prefix6: -1, Term: term, Pos: pos}
	rest := term
	switch rest[0] {
	case '+', '-', '~', '?':
		m.Qualifier = rest[0]
		rest = rest[1:]
	}
	n := strings.IndexAny(rest, ":/")
	if n < 0 {
		n = len(rest)
	}
	m.Kind = strings.ToLower(rest[:n])
	rest = rest[n:]
	switch m.Kind {
	case "all":
		if rest != "" {
			return serr("all takes no argument")
		}
	case "include", "exists":
		if !strings.HasPrefix(rest, ":") {
			return serr("%s needs a domain: %s:<domain>", m.Kind, m.Kind)
		}
		m.Domain = rest[1:]
		if err := checkDomainSpec(m.Domain, false); err != nil {
			return serr("%v", err)
		}
	case "ptr":
		if rest != "" {
			if !strings.HasPrefix(rest, ":") {
				return serr("ptr takes no cidr length")
			}
			m.Domain = rest[1:]
			if err := checkDomainSpec(m.Domain, false); err != nil {
				return serr("%v", err)
			}
		}
	case "a", "mx":
		spec, p4, p6, err := splitDualCIDR(rest)
		if err != nil {
			return serr("%v", err)
		}
		m.Prefix4, m.Prefix6 = p4, p6
		if spec != "" {
			if !strings.HasPrefix(spec, ":") {
				return serr("unexpected %q after %s", spec, m.Kind)
			}
			m.Domain = spec[1:]
			if err := checkDomainSpec(m.Domain, false); err != nil {
				return serr("%v", err)
			}
		}
	case "ip4", "ip6":
		if !strings.HasPrefix(rest, ":") {
			return serr("%s needs a network: %s:<address>[/<prefix>]", m.Kind, m.Kind)
		}
		ipnet, err := parseNetwork(m.Kind, rest[1:])
		if err != nil {
			return serr("%v", err)
		}
		m.Net = ipnet
	default:
		if m.Kind == "" {
			return serr("empty mechanism")
		}
		return serr("unknown mechanism %q", m.Kind)
	}
	r.Mechanisms = append(r.Mechanisms, m)
	return nil
}

func isName(s string) bool {
	if s == "" || !isAlpha(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isAlpha(c) && !isDigit(c) && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return true
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// parseCIDRLen parses an ip4-cidr-length or ip6-cidr-length value:
// "0" / %x31-39 0*nDIGIT, at most max (RFC 7208 §5.6).
func parseCIDRLen(s string, max int) (int, error) {
	if s == "" || (len(s) > 1 && s[0] == '0') || len(s) > 3 {
		return 0, fmt.Errorf("invalid prefix length %q", s)
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, fmt.Errorf("invalid prefix length %q", s)
		}
	}
	n, _ := strconv.Atoi(s)
	if n > max {
		return 0, fmt.Errorf("prefix length /%d exceeds %d", n, max)
	}
	return n, nil
}

// splitDualCIDR splits [ ":" domain-spec ] [ dual-cidr-length ] from the
// end: dual-cidr-length = [ ip4-cidr-length ] [ "/" ip6-cidr-length ].
func splitDualCIDR(s string) (spec string, p4, p6 int, err error) {
	p4, p6 = -1, -1
	trailingDigits := func(s string) (string, string) {
		i := len(s)
		for i > 0 && isDigit(s[i-1]) {
			i--
		}
		return s[:i], s[i:]
	}
	if head, digits := trailingDigits(s); digits != "" && strings.HasSuffix(head, "//") {
		if p6, err = parseCIDRLen(digits, 128); err != nil {
			return "", 0, 0, err
		}
		s = strings.TrimSuffix(head, "//")
	} else if strings.HasSuffix(s, "//") {
		return "", 0, 0, fmt.Errorf("missing ip6 prefix length")
	}
	if head, digits := trailingDigits(s); digits != "" && strings.HasSuffix(head, "/") {
		if p4, err = parseCIDRLen(digits, 32); err != nil {
			return "", 0, 0, err
		}
		s = strings.TrimSuffix(head, "/")
	}
	if strings.HasPrefix(s, "/") {
		return "", 0, 0, fmt.Errorf("invalid prefix length %q", s)
	}
	return s, p4, p6, nil
}

// parseNetwork parses ip4-network [ ip4-cidr-length ] or ip6-network
// [ ip6-cidr-length ] (RFC 7208 §5.6).
func parseNetwork(kind, s string) (*net.IPNet, error) {
	addr, plen := s, ""
	if i := strings.IndexByte(s, '/'); i >= 0 {
		addr, plen = s[:i], s[i+1:]
	}
	bits, max := 32, 32
	var ip net.IP
	if kind == "ip4" {
		ip = parseDottedQuad(addr)
		if ip == nil {
			return nil, fmt.Errorf("invalid IPv4 address %q", addr)
		}
	} else {
		bits, max = 128, 128
		ip = net.ParseIP(addr)
		if ip == nil || !strings.Contains(addr, ":") {
			return nil, fmt.Errorf("invalid IPv6 address %q", addr)
		}
		ip = ip.To16()
	}
	ones := bits
	if strings.Contains(s, "/") {
		n, err := parseCIDRLen(plen, max)
		if err != nil {
			return nil, err
		}
		ones = n
	}
	mask := net.CIDRMask(ones, bits)
	return &net.IPNet{IP: ip.Mask(mask), Mask: mask}, nil
}

// parseDottedQuad accepts exactly ip4-network: four dec-octets without
// leading zeros (RFC 7208 §12).
func parseDottedQuad(s string) net.IP {
	parts := strings.Split(s, ".")
	if len(parts) != 4 {
		return nil
	}
	ip := make(net.IP, 4)
	for i, p := range parts {
		if p == "" || len(p) > 3 || (len(p) > 1 && p[0] == '0') {
			return nil
		}
		n := 0
		for j := 0; j < len(p); j++ {
			if !isDigit(p[j]) {
				return nil
			}
			n = n*10 + int(p[j]-'0')
		}
		if n > 255 {
			return nil
		}
		ip[i] = byte(n)
	}
	return ip
}

// checkDomainSpec validates domain-spec = macro-string domain-end, with
// domain-end = ( "." toplabel [ "." ] ) / macro-expand (RFC 7208 §7.1).
func checkDomainSpec(s string, exp bool) error {
	if s == "" {
		return fmt.Errorf("empty domain")
	}
	toks, err := parseMacroString(s, exp)
	if err != nil {
		return err
	}
	last := toks[len(toks)-1]
	if last.letter != 0 || last.lit == "" {
		return nil // ends with a macro-expand
	}
	// The literal may continue a domain started before a macro, so look
	// only at the literal tail.
	tail := last.lit
	if len(toks) == 1 {
		tail = s
	}
	t := strings.TrimSuffix(tail, ".")
	dot := strings.LastIndexByte(t, '.')
	if dot < 0 {
		return fmt.Errorf("domain %q does not end in a top-level label", s)
	}
	if !isTopLabel(t[dot+1:]) {
		return fmt.Errorf("domain %q has an invalid top-level label %q", s, t[dot+1:])
	}
	return nil
}

// isTopLabel: toplabel = ( *alphanum ALPHA *alphanum ) /
// ( 1*alphanum "-" *( alphanum / "-" ) alphanum ) (RFC 7208 §7.1).
func isTopLabel(s string) bool {
	if s == "" {
		return false
	}
	alpha, hyphen := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isAlpha(c):
			alpha = true
		case isDigit(c):
		case c == '-':
			hyphen = true
		default:
			return false
		}
	}
	if !hyphen {
		return alpha
	}
	return s[0] != '-' && s[len(s)-1] != '-'
}
