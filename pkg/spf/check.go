package spf

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/relayctl/relayctl/pkg/dnsclient"
)

// Result is the outcome of check_host() (RFC 7208 §2.6).
type Result string

// Results, in the RFC's own words.
const (
	None      Result = "none"
	Neutral   Result = "neutral"
	Pass      Result = "pass"
	Fail      Result = "fail"
	SoftFail  Result = "softfail"
	TempError Result = "temperror"
	PermError Result = "permerror"
)

// Processing limits (RFC 7208 §4.6.4).
const (
	DefaultMaxLookups = 10 // DNS-querying terms
	DefaultMaxVoid    = 2  // void lookups
	MaxMXNames        = 10 // MX names per mx term
	MaxPTRNames       = 10 // PTR names looked at per ptr term or %{p}
)

// Errors carried in Outcome.Err; test them with errors.Is.
var (
	ErrNoRecord        = errors.New("spf: no SPF record")
	ErrMultipleRecords = errors.New("spf: more than one SPF record")
	ErrLookupLimit     = errors.New("spf: more than 10 DNS-querying terms")
	ErrVoidLimit       = errors.New("spf: more than 2 void lookups")
	ErrMXLimit         = errors.New("spf: more than 10 MX names")
	ErrInvalidDomain   = errors.New("spf: invalid domain")
	ErrIncludeNone     = errors.New("spf: included domain has no SPF record")
	ErrRedirectNone    = errors.New("spf: redirect target has no SPF record")
	ErrDNS             = errors.New("spf: DNS lookup failed")
)

// Checker evaluates check_host() (RFC 7208 §4). It needs a Resolver;
// the other fields have defaults. A Checker is not changed by CheckHost
// and may be used from several goroutines.
type Checker struct {
	Resolver   dnsclient.Resolver
	HELO       string           // %{h}
	Receiver   string           // %{r}; "" → "unknown"
	MaxLookups int              // 0 → 10
	MaxVoid    int              // 0 → 2
	Now        func() time.Time // %{t}; nil → time.Now
}

// Outcome is the result of CheckHost.
type Outcome struct {
	Result Result `json:"result"`
	// Domain is the domain whose record decided the result.
	Domain string `json:"domain"`
	// Matched is the term that matched, "" when the default applied.
	Matched string `json:"mechanism"`
	// Explanation is the expanded exp= text (only with fail).
	Explanation string `json:"explanation,omitempty"`
	Lookups     int    `json:"lookups"`
	VoidLookups int    `json:"void_lookups"`
	// Err is the cause of temperror and permerror (and of none).
	Err error `json:"-"`
	// Trace lists the terms evaluated, in order; an include's or
	// redirect's own terms follow it one level deeper.
	Trace []Step `json:"trace,omitempty"`
}

// Step is one evaluated term.
type Step struct {
	Depth  int    `json:"depth"`
	Domain string `json:"domain"`
	Term   string `json:"term"`
	// Result is "match", "no match", or the result that ended the
	// evaluation there (permerror, temperror).
	Result string `json:"result"`
}

// maxTrace bounds the trace of a hostile record.
const maxTrace = 500

// evalError ends evaluation with a result (temperror or permerror).
type evalError struct {
	res Result
	err error
}

func (e *evalError) Error() string { return e.err.Error() }
func (e *evalError) Unwrap() error { return e.err }

func permErr(err error) error { return &evalError{PermError, err} }
func tempErr(err error) error { return &evalError{TempError, err} }

type eval struct {
	c        *Checker
	ctx      context.Context
	ip       net.IP
	sender   string
	lookups  int
	voids    int
	maxL     int
	maxV     int
	now      time.Time
	validFor map[string]string // %{p} per domain
	trace    []Step
}

// step records a term about to be evaluated and returns its index (or
// -1 once the trace is full); done fills in its result.
func (e *eval) step(depth int, domain, term string) int {
	if len(e.trace) >= maxTrace {
		return -1
	}
	e.trace = append(e.trace, Step{Depth: depth, Domain: domain, Term: term})
	return len(e.trace) - 1
}

func (e *eval) done(i int, result string) {
	if i >= 0 {
		e.trace[i].Result = result
	}
}

// CheckHost runs check_host(<ip>, <domain>, <sender>) (RFC 7208 §4). An
// empty sender is taken as "postmaster@domain" (§2.4); a sender without
// a local-part gets "postmaster" (§4.3).
func (c *Checker) CheckHost(ctx context.Context, ip net.IP, domain, sender string) Outcome {
	e := &eval{c: c, ctx: ctx, ip: ip, maxL: c.MaxLookups, maxV: c.MaxVoid, validFor: map[string]string{}}
	if ip4 := ip.To4(); ip4 != nil {
		e.ip = ip4
	}
	if e.maxL <= 0 {
		e.maxL = DefaultMaxLookups
	}
	if e.maxV <= 0 {
		e.maxV = DefaultMaxVoid
	}
	e.now = time.Now()
	if c.Now != nil {
		e.now = c.Now()
	}
	domain = strings.TrimSuffix(domain, ".")
	switch {
	case sender == "":
		sender = "postmaster@" + domain
	case !strings.Contains(sender, "@"):
		sender = "postmaster@" + sender
	case strings.HasPrefix(sender, "@"):
		sender = "postmaster" + sender
	}
	e.sender = sender
	if c.Resolver == nil {
		return Outcome{Result: TempError, Domain: domain, Err: errors.New("spf: no resolver")}
	}
	if e.ip == nil || (e.ip.To4() == nil && e.ip.To16() == nil) {
		return Outcome{Result: PermError, Domain: domain, Err: fmt.Errorf("spf: invalid IP address")}
	}
	o := e.checkHost(domain, false, 0)
	o.Lookups, o.VoidLookups, o.Trace = e.lookups, e.voids, e.trace
	return o
}

// ValidDomain reports whether d can be the <domain> of check_host(): a
// fully qualified name of LDH (and underscore) labels of 1–63 octets,
// at most 253 octets in all (RFC 7208 §4.3).
func ValidDomain(d string) bool {
	d = strings.TrimSuffix(d, ".")
	if d == "" || len(d) > 253 {
		return false
	}
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !isAlpha(c) && !isDigit(c) && c != '-' && c != '_' {
				return false
			}
		}
	}
	return true
}

// LookupRecord fetches and parses the SPF record of domain (RFC 7208
// §4.4, §4.5). It returns the SPF TXT records found (as raw strings,
// each a list of its character-strings) even when it fails:
// ErrNoRecord (NXDOMAIN, no data, or no v=spf1 record), ErrMultipleRecords,
// a *SyntaxError, or a *dnsclient.QueryError wrapped in ErrDNS.
func LookupRecord(ctx context.Context, r dnsclient.Resolver, domain string) (*Record, [][]string, error) {
	rec, strs, _, err := lookupRecord(ctx, r, domain)
	return rec, strs, err
}

// lookupRecord is LookupRecord that also returns the TXT answer.
func lookupRecord(ctx context.Context, r dnsclient.Resolver, domain string) (*Record, [][]string, *dnsclient.Response, error) {
	resp, err := r.Exchange(ctx, domain, dns.TypeTXT)
	if err != nil {
		if errors.Is(err, dnsclient.ErrInvalid) {
			return nil, nil, nil, fmt.Errorf("%w: %w", ErrNoRecord, err)
		}
		return nil, nil, nil, fmt.Errorf("%w: %w", ErrDNS, err)
	}
	var spfs [][]string
	var joined []string
	for _, rr := range resp.Records() {
		var parts []string
		for _, p := range rr.(*dns.TXT).Txt {
			parts = append(parts, dnsclient.UnescapeTXT(p))
		}
		txt := strings.Join(parts, "") // RFC 7208 §3.3: concatenate without spaces
		if IsSPF(txt) {
			spfs = append(spfs, parts)
			joined = append(joined, txt)
		}
	}
	switch len(joined) {
	case 0:
		return nil, nil, resp, &NoRecordError{Domain: domain, Outcome: resp.Outcome}
	case 1:
	default:
		return nil, spfs, resp, fmt.Errorf("%w at %s: %d records", ErrMultipleRecords, domain, len(joined))
	}
	rec, err := Parse(joined[0])
	if err != nil {
		return nil, spfs, resp, err
	}
	return rec, spfs, resp, nil
}

// answerSize is what RFC 7208 §3.4 asks to keep under 450 octets: the
// length of the name plus the text of every TXT record there.
func answerSize(domain string, resp *dnsclient.Response) int {
	n := len(strings.TrimSuffix(domain, "."))
	if resp == nil {
		return n
	}
	for _, rr := range resp.Records() {
		for _, p := range rr.(*dns.TXT).Txt {
			n += len(dnsclient.UnescapeTXT(p))
		}
	}
	return n
}

// NoRecordError is returned by LookupRecord when a domain has no SPF
// record; errors.Is(err, ErrNoRecord) holds. Outcome tells NXDOMAIN and
// no TXT data from TXT records none of which is SPF (OutcomeAnswer).
type NoRecordError struct {
	Domain  string
	Outcome dnsclient.Outcome
}

func (e *NoRecordError) Error() string {
	why := "no TXT record"
	switch e.Outcome {
	case dnsclient.OutcomeNXDomain:
		why = "NXDOMAIN"
	case dnsclient.OutcomeAnswer:
		why = "no TXT record starts with \"v=spf1\""
	}
	return fmt.Sprintf("spf: no SPF record at %s (%s)", e.Domain, why)
}

// Is makes errors.Is(err, ErrNoRecord) true.
func (e *NoRecordError) Is(target error) bool { return target == ErrNoRecord }

// checkHost evaluates one record. inInclude suppresses the explanation
// (RFC 7208 §5.2: an included record's exp= is not used).
func (e *eval) checkHost(domain string, inInclude bool, depth int) Outcome {
	out := Outcome{Domain: domain}
	if !ValidDomain(domain) { // RFC 7208 §4.3
		out.Result, out.Err = None, fmt.Errorf("%w: %q", ErrInvalidDomain, domain)
		return out
	}
	rec, _, err := LookupRecord(e.ctx, e.c.Resolver, domain)
	switch {
	case err == nil:
	case errors.Is(err, ErrNoRecord):
		out.Result, out.Err = None, err
		return out
	case errors.Is(err, ErrDNS):
		out.Result, out.Err = TempError, err // RFC 7208 §4.4
		return out
	default:
		out.Result, out.Err = PermError, err // §4.5 several records, §4.6 syntax
		return out
	}

	hasAll := false
	for _, m := range rec.Mechanisms {
		if m.Kind == "all" {
			hasAll = true
		}
		st := e.step(depth, domain, m.Term)
		match, err := e.mechanism(m, domain, depth)
		if err != nil {
			var ee *evalError
			if errors.As(err, &ee) {
				out.Result, out.Err, out.Matched = ee.res, ee.err, m.Term
			} else {
				out.Result, out.Err, out.Matched = PermError, err, m.Term
			}
			e.done(st, string(out.Result))
			return out
		}
		if !match {
			e.done(st, "no match")
			continue
		}
		e.done(st, "match")
		out.Result, out.Matched = m.Result(), m.Term
		if out.Result == Fail && !inInclude {
			out.Explanation = e.explain(rec, domain)
		}
		return out
	}
	if rec.Redirect != "" && !hasAll { // RFC 7208 §6.1: ignored when "all" is present
		st := e.step(depth, domain, "redirect="+rec.Redirect)
		if err := e.count(); err != nil {
			out.Result, out.Err, out.Matched = PermError, err, "redirect="+rec.Redirect
			e.done(st, string(out.Result))
			return out
		}
		target, err := e.target(rec.Redirect, domain)
		if err != nil || !ValidDomain(target) {
			out.Result, out.Err, out.Matched = PermError, fmt.Errorf("%w: redirect=%s", ErrInvalidDomain, rec.Redirect), "redirect="+rec.Redirect
			e.done(st, string(out.Result))
			return out
		}
		e.done(st, "follow")
		sub := e.checkHost(target, inInclude, depth+1)
		if sub.Result == None { // §6.1
			sub.Result, sub.Err = PermError, fmt.Errorf("%w: %s", ErrRedirectNone, target)
		}
		return sub
	}
	out.Result = Neutral // §4.7
	return out
}

// count charges one DNS-querying term (RFC 7208 §4.6.4).
func (e *eval) count() error {
	e.lookups++
	if e.lookups > e.maxL {
		return permErr(fmt.Errorf("%w (limit %d)", ErrLookupLimit, e.maxL))
	}
	return nil
}

// void records a void lookup and fails once there are too many.
func (e *eval) void() error {
	e.voids++
	if e.voids > e.maxV {
		return permErr(fmt.Errorf("%w (limit %d)", ErrVoidLimit, e.maxV))
	}
	return nil
}

func (e *eval) macros(domain string) *MacroContext {
	return &MacroContext{
		Sender: e.sender, Domain: domain, HELO: e.c.HELO, IP: e.ip, Receiver: e.c.Receiver, Now: e.now,
		Validated: func() string { return e.validated(domain) },
	}
}

// target expands a domain-spec (or returns the current domain when it
// is empty) and truncates it to 253 octets from the left (RFC 7208 §7.3).
func (e *eval) target(spec, domain string) (string, error) {
	if spec == "" {
		return domain, nil
	}
	s, err := Expand(spec, e.macros(domain), false)
	if err != nil {
		return "", permErr(err)
	}
	return truncateDomain(s), nil
}

func truncateDomain(s string) string {
	s = strings.TrimSuffix(s, ".")
	for len(s) > 253 {
		i := strings.IndexByte(s, '.')
		if i < 0 {
			return s
		}
		s = s[i+1:]
	}
	return s
}

// lookup queries name/qtype, counting void answers and turning server
// failures into temperror (RFC 7208 §4.6.4, §5).
func (e *eval) lookup(name string, qtype uint16, countVoid bool) (*dnsclient.Response, error) {
	resp, err := e.c.Resolver.Exchange(e.ctx, name, qtype)
	if err != nil {
		if errors.Is(err, dnsclient.ErrInvalid) {
			// A name that cannot exist answers like NXDOMAIN.
			if countVoid {
				if verr := e.void(); verr != nil {
					return nil, verr
				}
			}
			return &dnsclient.Response{Outcome: dnsclient.OutcomeNXDomain, Type: qtype}, nil
		}
		return nil, tempErr(fmt.Errorf("%w: %w", ErrDNS, err))
	}
	if countVoid && resp.Outcome.Void() {
		if verr := e.void(); verr != nil {
			return nil, verr
		}
	}
	return resp, nil
}

func (e *eval) addrType() uint16 {
	if e.ip.To4() != nil {
		return dns.TypeA
	}
	return dns.TypeAAAA
}

// matchAddrs looks up the addresses of name and matches them against
// the client IP with the a/mx dual-cidr-length (RFC 7208 §5.3, §5.6).
func (e *eval) matchAddrs(name string, m Mechanism, countVoid bool) (bool, error) {
	resp, err := e.lookup(name, e.addrType(), countVoid)
	if err != nil {
		return false, err
	}
	plen, bits := m.Prefix4, 32
	if e.ip.To4() == nil {
		plen, bits = m.Prefix6, 128
	}
	if plen < 0 {
		plen = bits
	}
	mask := net.CIDRMask(plen, bits)
	for _, rr := range resp.Records() {
		var addr net.IP
		switch v := rr.(type) {
		case *dns.A:
			addr = v.A.To4()
		case *dns.AAAA:
			addr = v.AAAA.To16()
		}
		if addr != nil && len(addr) == len(e.ip) && addr.Mask(mask).Equal(e.ip.Mask(mask)) {
			return true, nil
		}
	}
	return false, nil
}

func (e *eval) mechanism(m Mechanism, domain string, depth int) (bool, error) {
	if m.CausesLookup() {
		if err := e.count(); err != nil {
			return false, err
		}
	}
	switch m.Kind {
	case "all": // §5.1
		return true, nil
	case "ip4", "ip6": // §5.6
		if (m.Kind == "ip4") != (e.ip.To4() != nil) {
			return false, nil
		}
		return m.Net.Contains(e.ip), nil
	}
	target, err := e.target(m.Domain, domain)
	if err != nil {
		return false, err
	}
	switch m.Kind {
	case "a": // §5.3
		return e.matchAddrs(target, m, true)
	case "mx": // §5.4
		resp, err := e.lookup(target, dns.TypeMX, true)
		if err != nil {
			return false, err
		}
		mxs := resp.Records()
		if len(mxs) > MaxMXNames { // §4.6.4
			return false, permErr(fmt.Errorf("%w: %s has %d", ErrMXLimit, target, len(mxs)))
		}
		for _, rr := range mxs {
			host := strings.TrimSuffix(rr.(*dns.MX).Mx, ".")
			if host == "" { // null MX (RFC 7505)
				continue
			}
			// Void lookups are counted per term (RFC 7208 §4.6.4: "the
			// number of terms for which DNS queries return" nothing):
			// the MX query decides. An MX host without an address of
			// the client's family (a v4-only host for an IPv6 client) is
			// not a void term, or "v=spf1 mx" with three such hosts
			// would permerror for every IPv6 sender.
			ok, err := e.matchAddrs(host, m, false)
			if err != nil || ok {
				return ok, err
			}
		}
		return false, nil
	case "ptr": // §5.5
		for _, name := range e.validatedNames(true) {
			if strings.EqualFold(name, target) || hasSuffixFold(name, "."+target) {
				return true, nil
			}
		}
		return false, e.pendingVoidErr()
	case "exists": // §5.7: always an A query
		resp, err := e.lookup(target, dns.TypeA, true)
		if err != nil {
			return false, err
		}
		return len(resp.Records()) > 0, nil
	case "include": // §5.2
		if !ValidDomain(target) {
			return false, permErr(fmt.Errorf("%w: include:%s", ErrInvalidDomain, target))
		}
		sub := e.checkHost(target, true, depth+1)
		switch sub.Result {
		case Pass:
			return true, nil
		case Fail, SoftFail, Neutral:
			return false, nil
		case TempError:
			return false, tempErr(sub.Err)
		case None:
			return false, permErr(fmt.Errorf("%w: %s", ErrIncludeNone, target))
		default:
			return false, permErr(sub.Err)
		}
	}
	return false, permErr(fmt.Errorf("spf: unknown mechanism %q", m.Kind))
}

func (e *eval) pendingVoidErr() error {
	if e.voids > e.maxV {
		return permErr(fmt.Errorf("%w (limit %d)", ErrVoidLimit, e.maxV))
	}
	return nil
}

func hasSuffixFold(s, suffix string) bool {
	return len(s) >= len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix)
}

// validatedNames returns the names of the client IP whose forward lookup
// leads back to it (RFC 7208 §5.5): at most 10 PTR names are looked at,
// and DNS errors only drop names.
func (e *eval) validatedNames(countVoid bool) []string {
	ptrs, resp, err := dnsclient.LookupPTR(e.ctx, e.c.Resolver, e.ip)
	if err != nil {
		return nil
	}
	if countVoid && resp.Outcome.Void() {
		e.voids++
	}
	var out []string
	for i, ptr := range ptrs {
		if i >= MaxPTRNames { // §4.6.4: extra names are ignored
			break
		}
		name := strings.TrimSuffix(ptr, ".")
		addrs, _, err := dnsclient.LookupIP(e.ctx, e.c.Resolver, name, e.addrType())
		if err != nil {
			continue
		}
		for _, addr := range addrs {
			if addr.Equal(e.ip) {
				out = append(out, name)
				break
			}
		}
	}
	return out
}

// validated is %{p}: a validated name equal to domain, else one under
// it, else any, else "unknown" (RFC 7208 §7.3).
func (e *eval) validated(domain string) string {
	if v, ok := e.validFor[domain]; ok {
		return v
	}
	names := e.validatedNames(false)
	v := "unknown"
	for _, n := range names {
		if strings.EqualFold(n, domain) {
			v = n
			break
		}
	}
	if v == "unknown" {
		for _, n := range names {
			if hasSuffixFold(n, "."+domain) {
				v = n
				break
			}
		}
	}
	if v == "unknown" && len(names) > 0 {
		v = names[0]
	}
	e.validFor[domain] = v
	return v
}

// explain computes the explanation for a fail (RFC 7208 §6.2). Any
// problem simply means no explanation.
func (e *eval) explain(rec *Record, domain string) string {
	if rec.Exp == "" {
		return ""
	}
	target, err := e.target(rec.Exp, domain)
	if err != nil || target == "" {
		return ""
	}
	txts, resp, err := dnsclient.LookupTXT(e.ctx, e.c.Resolver, target)
	if err != nil || resp.Outcome != dnsclient.OutcomeAnswer || len(txts) != 1 {
		return ""
	}
	for i := 0; i < len(txts[0]); i++ {
		if txts[0][i] > 0x7e { // §6.2: must be ASCII
			return ""
		}
	}
	s, err := Expand(txts[0], e.macros(domain), true)
	if err != nil {
		return ""
	}
	return s
}

// SenderDomain returns the <domain> check_host() starts from: the domain
// of the MAIL FROM address, or the HELO name when the sender is empty
// (RFC 7208 §2.3, §2.4).
func SenderDomain(sender, helo string) string {
	if sender == "" {
		return strings.TrimSuffix(helo, ".")
	}
	if i := strings.LastIndexByte(sender, '@'); i >= 0 {
		return strings.TrimSuffix(sender[i+1:], ".")
	}
	return strings.TrimSuffix(sender, ".")
}
