// Package dmarc implements DMARC: the policy record (RFC 7489 §6.3, and
// its successor RFC 9989, "DMARCbis"), policy discovery (RFC 7489 §6.6.3
// with the public suffix list; RFC 9989 §4.10 with the DNS tree walk),
// identifier alignment (RFC 7489 §3.1), authorisation of external report
// destinations (RFC 7489 §7.1) and the disposition a receiver applies
// (RFC 7489 §6.6.4, §6.3 sp/pct; RFC 9989 np and t).
//
// Both generations are evaluated side by side so that a domain owner can
// see where receivers following RFC 7489 and receivers following RFC 9989
// will disagree about the same domain or message.
package dmarc

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/relayctl/relayctl/pkg/report"
)

// Policy is a requested handling policy (RFC 7489 §6.3 "p").
type Policy string

// Policies, mildest first.
const (
	PolicyNone       Policy = "none"
	PolicyQuarantine Policy = "quarantine"
	PolicyReject     Policy = "reject"
)

// weaker returns the next milder policy (RFC 7489 §6.6.4: messages not
// sampled by pct get "the next less restrictive policy"; RFC 9989 t=y).
func (p Policy) weaker() Policy {
	switch p {
	case PolicyReject:
		return PolicyQuarantine
	case PolicyQuarantine:
		return PolicyNone
	}
	return PolicyNone
}

// Alignment is an identifier alignment mode (RFC 7489 §3.1).
type Alignment string

// Alignment modes.
const (
	Relaxed Alignment = "r"
	Strict  Alignment = "s"
)

// Name returns "relaxed" or "strict".
func (a Alignment) Name() string {
	if a == Strict {
		return "strict"
	}
	return "relaxed"
}

// URI is one report destination of rua or ruf (RFC 7489 §6.4 dmarc-uri).
type URI struct {
	Raw     string `json:"uri"`
	Scheme  string `json:"scheme"`
	Address string `json:"address,omitempty"` // mailto: addr-spec
	Domain  string `json:"domain,omitempty"`  // domain of Address, lower case
	// MaxSize is the size limit in bytes ("!10m"), 0 when absent.
	MaxSize uint64 `json:"max_size,omitempty"`
}

// Record is a parsed DMARC policy record. Absent tags hold their defaults
// (RFC 7489 §6.3); the Has* fields say what was published.
type Record struct {
	Raw string `json:"raw"`

	Policy            Policy    `json:"p"`
	SubdomainPolicy   Policy    `json:"sp,omitempty"` // "" when absent: p applies
	NonexistentPolicy Policy    `json:"np,omitempty"` // RFC 9989; "" when absent
	ADKIM             Alignment `json:"adkim"`
	ASPF              Alignment `json:"aspf"`
	Percent           int       `json:"pct"`
	FailureOptions    []string  `json:"fo"`
	ReportFormat      []string  `json:"rf"`
	ReportInterval    uint64    `json:"ri"`
	RUA               []URI     `json:"rua"`
	RUF               []URI     `json:"ruf"`
	PSD               string    `json:"psd,omitempty"` // RFC 9989: "y", "n", "u" or ""
	Testing           bool      `json:"t,omitempty"`   // RFC 9989 t=y

	// ValidPolicy is false when p is missing or invalid: RFC 7489 §6.6.3
	// then treats the record as p=none if rua holds a valid URI, and
	// ignores it otherwise; RFC 9989 §5.3 treats it as p=none.
	ValidPolicy bool `json:"-"`
	// InvalidSubdomainPolicy is set when sp is published but invalid
	// (RFC 7489 §6.6.3 treats that like an invalid p).
	InvalidSubdomainPolicy bool `json:"-"`
	// Tags holds the names of the valid published tags in order, lower
	// case ("v" first).
	Tags []string `json:"tags"`
	// Problems are the record's syntax and validity findings.
	Problems []report.Finding `json:"-"`
}

// UsableBy7489 reports whether an RFC 7489 receiver applies the record
// (§6.6.3 step 6): with a missing or invalid p, or an invalid sp, only if
// rua holds a valid URI, and then as p=none.
func (r *Record) UsableBy7489() bool {
	return (r.ValidPolicy && !r.InvalidSubdomainPolicy) || len(r.RUA) > 0
}

// Has reports whether tag was published.
func (r *Record) Has(tag string) bool {
	for _, t := range r.Tags {
		if t == tag {
			return true
		}
	}
	return false
}

// ErrNotDMARC is returned by Parse for a TXT record that does not start
// with "v=DMARC1": receivers discard it (RFC 7489 §6.6.3 step 2).
var ErrNotDMARC = errors.New("dmarc: not a DMARC record (must start with v=DMARC1)")

// IsDMARC reports whether a TXT record is a DMARC record candidate, i.e.
// starts with a version tag. It is true for "v=DMARC1" and for broken
// versions such as "v=dmarc1" that Parse rejects.
func IsDMARC(txt string) bool {
	t := strings.TrimLeft(txt, " \t")
	if len(t) < 2 || (t[0] != 'v' && t[0] != 'V') {
		return false
	}
	rest := strings.TrimLeft(t[1:], " \t")
	return strings.HasPrefix(rest, "=") && strings.HasPrefix(strings.ToUpper(strings.TrimLeft(rest[1:], " \t")), "DMARC")
}

// Finding codes produced by Parse.
const (
	CodeSyntax        = "dmarc.syntax-error"
	CodeInvalidPolicy = "dmarc.invalid-policy"
	CodeMissingPolicy = "dmarc.missing-policy"
	CodeUnknownTag    = "dmarc.unknown-tag"
	CodeDuplicateTag  = "dmarc.duplicate-tag"
	CodeInvalidURI    = "dmarc.invalid-report-uri"
	CodePolicyOrder   = "dmarc.policy-not-second"
)

// Parse parses a DMARC record. It returns ErrNotDMARC (wrapped) when the
// record does not start with exactly "v=DMARC1"; every other problem is
// reported in Record.Problems and the affected tag keeps its default, as
// RFC 7489 §6.3 asks ("syntax errors in the remainder of the record
// SHOULD be discarded in favor of default values").
func Parse(txt string) (*Record, error) {
	r := &Record{
		Raw:            txt,
		Policy:         PolicyNone,
		ADKIM:          Relaxed,
		ASPF:           Relaxed,
		Percent:        100,
		FailureOptions: []string{"0"},
		ReportFormat:   []string{"afrf"},
		ReportInterval: 86400,
		RUA:            []URI{},
		RUF:            []URI{},
	}
	parts := strings.Split(txt, ";")
	seen := map[string]bool{}
	var order []string // every tag name as published, valid or not
	for i, part := range parts {
		part = strings.Trim(part, " \t\r\n")
		if part == "" {
			if i == 0 {
				return nil, fmt.Errorf("%w: empty first tag", ErrNotDMARC)
			}
			continue // dmarc-sep allows a trailing ";" and empty terms
		}
		name, value, ok := strings.Cut(part, "=")
		name = strings.ToLower(strings.Trim(name, " \t"))
		value = strings.Trim(value, " \t")
		if i == 0 {
			// RFC 7489 §6.4: dmarc-version = "v" *WSP "=" *WSP %x44 %x4d %x41 %x52 %x43 %x31
			// (the value is case-sensitive) and it MUST be first (§6.3).
			if !ok || name != "v" || value != "DMARC1" {
				return nil, fmt.Errorf("%w: first tag is %q", ErrNotDMARC, part)
			}
			r.Tags = append(r.Tags, "v")
			seen["v"] = true
			continue
		}
		if !ok || !isTagName(name) {
			r.problem(CodeSyntax, report.SeverityError, "term %q is not a tag=value pair", part)
			continue
		}
		if seen[name] {
			r.problem(CodeDuplicateTag, report.SeverityError, "tag %q appears more than once; receivers may take either value", name)
			continue
		}
		seen[name] = true
		order = append(order, name)
		if r.parseTag(name, value) {
			r.Tags = append(r.Tags, name)
		}
	}
	if !seen["p"] {
		// RFC 7489 §6.3: p is REQUIRED; RFC 9989 §5.3 makes it optional,
		// defaulting to none.
		r.problem(CodeMissingPolicy, report.SeverityError, "no p= tag: RFC 7489 requires it (receivers then apply p=none only if rua holds a valid URI, else ignore the record); RFC 9989 defaults to p=none")
	} else if order[0] != "p" && r.ValidPolicy {
		// RFC 7489 §6.4 grammar puts dmarc-request right after the version.
		r.problem(CodePolicyOrder, report.SeverityWarning, "p= is not the second tag: RFC 7489's grammar requires \"v=DMARC1; p=…\" and strict parsers reject other orders (RFC 9989 allows any order)")
	}
	return r, nil
}

func (r *Record) problem(code string, sev report.Severity, format string, args ...any) {
	r.Problems = append(r.Problems, report.Finding{Code: code, Severity: sev, Message: fmt.Sprintf(format, args...)})
}

func isTagName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func parsePolicy(v string) (Policy, bool) {
	switch strings.ToLower(v) {
	case "none":
		return PolicyNone, true
	case "quarantine":
		return PolicyQuarantine, true
	case "reject":
		return PolicyReject, true
	}
	return "", false
}

// parseTag sets one tag and reports whether its value was valid.
func (r *Record) parseTag(name, value string) bool {
	switch name {
	case "p": // RFC 7489 §6.3
		p, ok := parsePolicy(value)
		if !ok {
			r.problem(CodeInvalidPolicy, report.SeverityError, "p=%s is not none, quarantine or reject", value)
			return false
		}
		r.Policy, r.ValidPolicy = p, true
	case "sp", "np": // RFC 7489 §6.3 sp; RFC 9989 §5.3 np
		p, ok := parsePolicy(value)
		if !ok {
			r.problem(CodeInvalidPolicy, report.SeverityError, "%s=%s is not none, quarantine or reject", name, value)
			r.InvalidSubdomainPolicy = r.InvalidSubdomainPolicy || name == "sp"
			return false
		}
		if name == "sp" {
			r.SubdomainPolicy = p
		} else {
			r.NonexistentPolicy = p
		}
	case "adkim", "aspf": // RFC 7489 §6.3
		var a Alignment
		switch strings.ToLower(value) {
		case "r":
			a = Relaxed
		case "s":
			a = Strict
		default:
			r.problem(CodeSyntax, report.SeverityError, "%s=%s is not r or s; receivers use the default r (relaxed)", name, value)
			return false
		}
		if name == "adkim" {
			r.ADKIM = a
		} else {
			r.ASPF = a
		}
	case "pct": // RFC 7489 §6.3: 1*3DIGIT, 0–100
		n, err := strconv.Atoi(value)
		if err != nil || len(value) > 3 || n < 0 || n > 100 || strings.ContainsAny(value, "+-") {
			r.problem(CodeSyntax, report.SeverityError, "pct=%s is not an integer from 0 to 100; receivers use 100", value)
			return false
		}
		r.Percent = n
	case "fo": // RFC 7489 §6.3: colon-separated 0, 1, d, s
		var opts []string
		for _, o := range strings.Split(value, ":") {
			o = strings.ToLower(strings.Trim(o, " \t"))
			if o != "0" && o != "1" && o != "d" && o != "s" {
				r.problem(CodeSyntax, report.SeverityError, "fo=%s: %q is not one of 0, 1, d, s", value, o)
				return false
			}
			opts = append(opts, o)
		}
		r.FailureOptions = opts
	case "rf": // RFC 7489 §6.3: colon-separated report formats; only afrf is registered
		var fmts []string
		for _, f := range strings.Split(value, ":") {
			f = strings.ToLower(strings.Trim(f, " \t"))
			if f != "afrf" {
				r.problem(CodeSyntax, report.SeverityError, "rf=%s: %q is not a registered failure report format (afrf)", value, f)
				return false
			}
			fmts = append(fmts, f)
		}
		r.ReportFormat = fmts
	case "ri": // RFC 7489 §6.3: 1*32DIGIT seconds
		n, err := strconv.ParseUint(value, 10, 32)
		if err != nil {
			r.problem(CodeSyntax, report.SeverityError, "ri=%s is not a number of seconds; receivers use 86400", value)
			return false
		}
		r.ReportInterval = n
	case "rua", "ruf":
		uris := r.parseURIs(name, value)
		if name == "rua" {
			r.RUA = uris
		} else {
			r.RUF = uris
		}
	case "psd": // RFC 9989 §5.3
		v := strings.ToLower(value)
		if v != "y" && v != "n" && v != "u" {
			r.problem(CodeSyntax, report.SeverityError, "psd=%s is not y, n or u", value)
			return false
		}
		r.PSD = v
	case "t": // RFC 9989 §5.3
		switch strings.ToLower(value) {
		case "y":
			r.Testing = true
		case "n":
		default:
			r.problem(CodeSyntax, report.SeverityError, "t=%s is not y or n", value)
			return false
		}
	default:
		// RFC 7489 §6.3: unknown tags MUST be ignored.
		r.problem(CodeUnknownTag, report.SeverityWarning, "unknown tag %q is ignored by receivers (a typo?)", name)
		return false
	}
	return true
}

// parseURIs parses a comma-separated dmarc-uri list (RFC 7489 §6.4):
// URI [ "!" 1*DIGIT [ "k" / "m" / "g" / "t" ] ].
func (r *Record) parseURIs(tag, value string) []URI {
	out := []URI{}
	for _, raw := range strings.Split(value, ",") {
		raw = strings.Trim(raw, " \t")
		if raw == "" {
			r.problem(CodeInvalidURI, report.SeverityError, "%s has an empty URI", tag)
			continue
		}
		u, err := parseURI(raw)
		if err != nil {
			r.problem(CodeInvalidURI, report.SeverityError, "%s=%s: %v", tag, raw, err)
			continue
		}
		out = append(out, u)
	}
	return out
}

func parseURI(raw string) (URI, error) {
	u := URI{Raw: raw}
	uri := raw
	if i := strings.LastIndexByte(raw, '!'); i >= 0 {
		uri = raw[:i]
		size := strings.ToLower(raw[i+1:])
		mult := uint64(1)
		if size != "" {
			switch size[len(size)-1] {
			case 'k':
				mult = 1 << 10
			case 'm':
				mult = 1 << 20
			case 'g':
				mult = 1 << 30
			case 't':
				mult = 1 << 40
			}
			if mult != 1 {
				size = size[:len(size)-1]
			}
		}
		n, err := strconv.ParseUint(size, 10, 64)
		if err != nil || strings.ContainsAny(size, "+-") || n > (1<<63)/mult {
			return u, fmt.Errorf("size limit %q is not a number with an optional k, m, g or t unit", raw[i+1:])
		}
		u.MaxSize = n * mult
	}
	scheme, rest, ok := strings.Cut(uri, ":")
	if !ok || scheme == "" {
		return u, errors.New("not a URI (expected mailto:address)")
	}
	u.Scheme = strings.ToLower(scheme)
	if u.Scheme != "mailto" {
		return u, fmt.Errorf("scheme %q: only mailto: report URIs are defined", scheme)
	}
	addr, _, _ := strings.Cut(rest, "?") // hfields are not part of the address
	addr = percentDecode(addr)
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 || strings.ContainsAny(addr, " \t,<>") {
		return u, fmt.Errorf("%q is not an email address", addr)
	}
	u.Address = addr
	u.Domain = strings.TrimSuffix(strings.ToLower(addr[at+1:]), ".")
	if !validDomain(u.Domain) {
		return u, fmt.Errorf("%q is not a valid domain", addr[at+1:])
	}
	return u, nil
}

func percentDecode(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(n))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// validDomain checks LDH labels (RFC 1035 §2.3.1 as relaxed by RFC 1123,
// plus "_" which appears in service names).
func validDomain(d string) bool {
	if d == "" || len(d) > 253 {
		return false
	}
	for _, l := range strings.Split(d, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// String formats the record in canonical form: the published tags in
// order with their parsed values (invalid tags are left out).
func (r *Record) String() string {
	var b strings.Builder
	b.WriteString("v=DMARC1")
	for _, t := range r.Tags {
		var v string
		switch t {
		case "v":
			continue
		case "p":
			if !r.ValidPolicy {
				continue
			}
			v = string(r.Policy)
		case "sp":
			v = string(r.SubdomainPolicy)
		case "np":
			v = string(r.NonexistentPolicy)
		case "adkim":
			v = string(r.ADKIM)
		case "aspf":
			v = string(r.ASPF)
		case "pct":
			v = strconv.Itoa(r.Percent)
		case "fo":
			v = strings.Join(r.FailureOptions, ":")
		case "rf":
			v = strings.Join(r.ReportFormat, ":")
		case "ri":
			v = strconv.FormatUint(r.ReportInterval, 10)
		case "rua", "ruf":
			uris := r.RUA
			if t == "ruf" {
				uris = r.RUF
			}
			var s []string
			for _, u := range uris {
				s = append(s, u.Raw)
			}
			v = strings.Join(s, ",")
		case "psd":
			v = r.PSD
		case "t":
			v = "n"
			if r.Testing {
				v = "y"
			}
		default:
			continue
		}
		if v == "" {
			continue
		}
		b.WriteString("; " + t + "=" + v)
	}
	return b.String()
}
