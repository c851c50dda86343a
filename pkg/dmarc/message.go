package dmarc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"strings"
	"time"

	"github.com/emersion/go-msgauth/authres"

	"github.com/relayctl/relayctl/pkg/dkim"
	"github.com/relayctl/relayctl/pkg/dnsclient"
	"github.com/relayctl/relayctl/pkg/report"
	"github.com/relayctl/relayctl/pkg/spf"
)

// Verdicts of DMARC evaluation (RFC 8601 §2.7.1 result values for
// method dmarc).
const (
	ResultPass      = "pass"
	ResultFail      = "fail"
	ResultNone      = "none"
	ResultTempError = "temperror"
	ResultPermError = "permerror"
)

// Finding codes of CheckMessage.
const (
	CodeFromMissing    = "dmarc.from-missing"
	CodeFromMultiple   = "dmarc.from-multiple"
	CodePass           = "dmarc.pass"
	CodeFail           = "dmarc.fail"
	CodeTempError      = "dmarc.temperror"
	CodeSPFUnaligned   = "dmarc.spf-unaligned"
	CodeDKIMUnaligned  = "dmarc.dkim-unaligned"
	CodeSPFNotPass     = "dmarc.spf-not-pass"
	CodeDKIMNotPass    = "dmarc.dkim-not-pass"
	CodeNoSignature    = "dmarc.dkim-none"
	CodeSPFNotEvaluted = "dmarc.spf-not-evaluated"
)

// MessageOptions describe the SMTP transaction a message arrived in.
type MessageOptions struct {
	// IP is the connecting client; without it SPF is not evaluated.
	IP net.IP
	// MailFrom is the RFC 5321.MailFrom address ("" for the null sender).
	MailFrom string
	// HELO is the HELO/EHLO name; SPF checks it when MailFrom is empty.
	HELO string
	// AuthServID names the receiver in Authentication-Results ("" →
	// "relayctl").
	AuthServID string
	// Now is the clock for SPF's %{t} (nil → time.Now).
	Now func() time.Time
}

// SPFIdentity is the SPF-authenticated identifier (RFC 7489 §4.2).
type SPFIdentity struct {
	Evaluated bool   `json:"evaluated"`
	Result    string `json:"result"`
	// Domain is the MAIL FROM domain, or the HELO name for the null
	// sender (Scope "helo").
	Domain         string `json:"domain"`
	Scope          string `json:"scope,omitempty"`
	Aligned        bool   `json:"aligned"`
	AlignedRFC9989 bool   `json:"aligned_rfc9989"`
	Mechanism      string `json:"mechanism,omitempty"`
	Error          string `json:"error,omitempty"`
}

// DKIMIdentity is one DKIM signature's verdict and alignment.
type DKIMIdentity struct {
	Domain         string `json:"domain"`
	Selector       string `json:"selector"`
	Result         string `json:"result"`
	Aligned        bool   `json:"aligned"`
	AlignedRFC9989 bool   `json:"aligned_rfc9989"`
	Reason         string `json:"reason,omitempty"`
	Code           string `json:"code,omitempty"`
}

// MessageResult is the JSON result of `check dmarc --message`.
type MessageResult struct {
	From       string         `json:"from"`
	FromDomain string         `json:"from_domain"`
	SPF        SPFIdentity    `json:"spf"`
	DKIM       []DKIMIdentity `json:"dkim"`
	// DMARC is the verdict: pass, fail, none (no policy), temperror.
	DMARC        string `json:"dmarc"`
	DMARCRFC9989 string `json:"dmarc_rfc9989"`
	// AlignedBy lists the identifiers that gave an aligned pass.
	AlignedBy []string `json:"aligned_by"`
	// Policy is the requested policy that applies to the From domain
	// (the value of p, sp or np: PolicySource), "" without a record.
	Policy       Policy `json:"policy"`
	PolicySource string `json:"policy_source,omitempty"`
	// Disposition is what a receiver does with this message: none for a
	// pass; for a fail the policy (RFC 7489, with pct sampling).
	Disposition        string `json:"disposition"`
	Percent            int    `json:"pct"`
	DispositionRFC9989 string `json:"disposition_rfc9989"`
	RecordDomain       string `json:"record_domain,omitempty"`
	Record             string `json:"record,omitempty"`
	ADKIM              string `json:"adkim,omitempty"`
	ASPF               string `json:"aspf,omitempty"`
	OrgDomain          string `json:"org_domain"`
	OrgDomainRFC9989   string `json:"org_domain_rfc9989"`
	// AuthenticationResults is the RFC 8601 header field a receiver
	// would add, "Authentication-Results: …".
	AuthenticationResults string `json:"authentication_results"`
}

// FromDomain returns the domain of the message's single RFC 5322.From
// address. RFC 7489 §6.6.1: a message with no From, several From fields
// or several addresses in From has no single author domain.
func FromDomain(header mail.Header) (addr, domain, code string, err error) {
	froms := header["From"]
	switch {
	case len(froms) == 0:
		return "", "", CodeFromMissing, errors.New("the message has no From header field")
	case len(froms) > 1:
		return "", "", CodeFromMultiple, fmt.Errorf("the message has %d From header fields", len(froms))
	}
	list, err := mail.ParseAddressList(froms[0])
	if err != nil {
		return "", "", CodeFromMissing, fmt.Errorf("the From field %q has no valid address: %v", froms[0], err)
	}
	if len(list) != 1 {
		return "", "", CodeFromMultiple, fmt.Errorf("the From field names %d authors: receivers cannot pick one domain to apply DMARC to", len(list))
	}
	at := strings.LastIndexByte(list[0].Address, '@')
	domain = Normalize(list[0].Address[at+1:])
	if at < 0 || !validDomain(domain) {
		return "", "", CodeFromMissing, fmt.Errorf("the From address %q has no valid domain", list[0].Address)
	}
	return list[0].Address, domain, "", nil
}

// CheckMessage evaluates a message as a receiver does (RFC 7489 §6.6):
// the From domain, its DMARC policy, DKIM signatures (pkg/dkim), SPF for
// the client IP when given (pkg/spf), identifier alignment, the verdict
// and the disposition. Findings go to rep; DNS failures set
// rep.Incomplete. The error is for a message that cannot be parsed.
func CheckMessage(ctx context.Context, r dnsclient.Resolver, msg []byte, o MessageOptions, rep *report.Report) (*MessageResult, error) {
	norm, _ := dkim.ToCRLF(msg)
	m, err := mail.ReadMessage(bytes.NewReader(norm))
	if err != nil {
		return nil, fmt.Errorf("dmarc: reading the message header: %w", err)
	}
	res := &MessageResult{DKIM: []DKIMIdentity{}, AlignedBy: []string{}, DMARC: ResultNone, DMARCRFC9989: ResultNone, Disposition: string(PolicyNone), DispositionRFC9989: string(PolicyNone), Percent: 100}
	addr, fromDomain, code, ferr := FromDomain(m.Header)
	if ferr != nil {
		// RFC 7489 §6.6.1: no single author domain; receivers reject or
		// treat the message as failing. DKIM and SPF are still reported.
		rep.Error(code, "%v", ferr)
		res.DMARC, res.DMARCRFC9989 = ResultPermError, ResultPermError
	}
	res.From, res.FromDomain = addr, fromDomain

	// DKIM (RFC 6376) through pkg/dkim.
	vs, err := dkim.Verify(ctx, r, bytes.NewReader(norm))
	if err != nil {
		return nil, err
	}
	if len(vs) == 0 {
		rep.Warn(CodeNoSignature, "the message has no DKIM signature: only SPF can make it pass DMARC, and SPF breaks on forwarding")
	}

	// SPF (RFC 7208) through pkg/spf, for the MAIL FROM domain or, for
	// the null sender, the HELO name (RFC 7489 §4.1 / RFC 7208 §2.3).
	if o.IP != nil {
		res.SPF.Evaluated = true
		res.SPF.Domain, res.SPF.Scope = spf.SenderDomain(o.MailFrom, o.HELO), "mailfrom"
		if o.MailFrom == "" {
			res.SPF.Scope = "helo"
		}
		if res.SPF.Domain == "" {
			res.SPF.Result = string(spf.None)
			res.SPF.Error = "no MAIL FROM domain and no HELO name"
		} else {
			c := &spf.Checker{Resolver: r, HELO: o.HELO, Now: o.Now}
			oc := c.CheckHost(ctx, o.IP, res.SPF.Domain, o.MailFrom)
			res.SPF.Result, res.SPF.Mechanism = string(oc.Result), oc.Matched
			if oc.Err != nil {
				res.SPF.Error = oc.Err.Error()
			}
		}
	} else {
		res.SPF.Result = string(spf.None)
		rep.Info(CodeSPFNotEvaluted, "SPF not evaluated: give --ip (and --mail-from or --helo) to check the sending IP as a receiver would")
	}

	if ferr != nil {
		for _, v := range vs {
			res.DKIM = append(res.DKIM, DKIMIdentity{Domain: v.Domain, Selector: v.Selector, Result: v.Result, Reason: v.Reason, Code: v.Code})
		}
		res.AuthenticationResults = authResults(o, res)
		return res, nil
	}

	// Policy discovery.
	d := NewDiscoverer(r)
	disc, derr := d.Discover(ctx, fromDomain)
	var rec *Record
	if derr != nil {
		rep.Incomplete = true
		rep.Warn(CodeDNS, "%v", derr)
		res.DMARC, res.DMARCRFC9989 = ResultTempError, ResultTempError
	} else {
		res.OrgDomain, res.OrgDomainRFC9989 = disc.OrgDomain, disc.BisOrgDomain
		if disc.Policy != nil {
			rec = disc.Policy.Record
			res.RecordDomain, res.Record = disc.Policy.Domain, rec.Raw
		} else if disc.BisPolicy != nil {
			rec = disc.BisPolicy.Record
			res.RecordDomain, res.Record = disc.BisPolicy.Domain, rec.Raw
		}
	}
	adkim, aspf := Relaxed, Relaxed
	if rec != nil {
		adkim, aspf = rec.ADKIM, rec.ASPF
		res.ADKIM, res.ASPF = string(adkim), string(aspf)
	}

	// RFC 9989 organizational domains come from the tree walk.
	bisOrg := func(domain string) string {
		org, err := d.BisOrgDomain(ctx, domain)
		if err != nil {
			rep.Incomplete = true
			return "" // unknown: never aligned by org domain
		}
		return org
	}
	bisAligned := func(id string, mode Alignment) bool {
		if mode == Strict || Normalize(id) == fromDomain {
			return Aligned(fromDomain, id, mode, OrganizationalDomain)
		}
		a, b := bisOrg(fromDomain), bisOrg(id)
		return a != "" && a == b
	}

	pass7489, pass9989, temp := false, false, false
	for _, v := range vs {
		id := DKIMIdentity{Domain: Normalize(v.Domain), Selector: v.Selector, Result: v.Result, Reason: v.Reason, Code: v.Code}
		id.Aligned = Aligned(fromDomain, id.Domain, adkim, OrganizationalDomain)
		id.AlignedRFC9989 = bisAligned(id.Domain, adkim)
		switch {
		case v.Result == dkim.ResultPass && (id.Aligned || id.AlignedRFC9989):
			pass7489 = pass7489 || id.Aligned
			pass9989 = pass9989 || id.AlignedRFC9989
		case v.Result == dkim.ResultPass:
			rep.Warn(CodeDKIMUnaligned, "DKIM signature d=%s s=%s passes but is not aligned with From domain %s (adkim=%s)", id.Domain, id.Selector, fromDomain, adkim)
		default:
			if v.Result == dkim.ResultTempError && id.Aligned {
				temp = true
			}
			why := v.Reason
			if v.Code != "" {
				why = v.Code + ": " + why
			}
			rep.Warn(CodeDKIMNotPass, "DKIM signature d=%s s=%s: %s (%s)", id.Domain, id.Selector, v.Result, why)
		}
		res.DKIM = append(res.DKIM, id)
	}
	if pass7489 || pass9989 {
		res.AlignedBy = append(res.AlignedBy, "dkim")
	}

	if res.SPF.Evaluated {
		s := &res.SPF
		s.Aligned = Aligned(fromDomain, s.Domain, aspf, OrganizationalDomain)
		s.AlignedRFC9989 = bisAligned(s.Domain, aspf)
		switch {
		case s.Result == string(spf.Pass) && (s.Aligned || s.AlignedRFC9989):
			pass7489 = pass7489 || s.Aligned
			pass9989 = pass9989 || s.AlignedRFC9989
			res.AlignedBy = append(res.AlignedBy, "spf")
		case s.Result == string(spf.Pass):
			rep.Warn(CodeSPFUnaligned, "SPF passes for %s but it is not aligned with From domain %s (aspf=%s): set the return-path (MAIL FROM) to an address in %s", s.Domain, fromDomain, aspf, fromDomain)
		default:
			if s.Result == string(spf.TempError) && s.Aligned {
				temp = true
			}
			why := ""
			if s.Error != "" {
				why = ": " + s.Error
			}
			rep.Warn(CodeSPFNotPass, "SPF for %s from %s is %s%s", s.Domain, o.IP, s.Result, why)
		}
	}

	if derr != nil {
		res.AuthenticationResults = authResults(o, res)
		return res, nil
	}
	verdict := func(found *Found, pass bool) string {
		switch {
		case found == nil:
			return ResultNone
		case pass:
			return ResultPass
		case temp:
			return ResultTempError
		}
		return ResultFail
	}
	res.DMARC = verdict(disc.Policy, pass7489)
	res.DMARCRFC9989 = verdict(disc.BisPolicy, pass9989)

	// Disposition (RFC 7489 §6.6.4; RFC 9989 np and t).
	if dp, ok := disc.Disposition7489(); ok {
		res.Policy, res.PolicySource, res.Percent = dp.Policy, dp.Source, dp.Percent
		if res.DMARC == ResultFail {
			res.Disposition = string(dp.Applied)
		}
	}
	if disc.BisPolicy != nil {
		nonexistent := false
		if disc.BisPolicy.Domain != fromDomain && disc.BisPolicy.Record.NonexistentPolicy != "" {
			ne, err := Nonexistent(ctx, r, fromDomain)
			if err != nil {
				rep.Incomplete = true
				rep.Warn(CodeDNS, "%v", err)
			}
			nonexistent = ne
		}
		dp, _ := disc.Disposition9989(nonexistent)
		if res.Policy == "" {
			res.Policy, res.PolicySource = dp.Policy, dp.Source
		}
		if res.DMARCRFC9989 == ResultFail {
			res.DispositionRFC9989 = string(dp.Applied)
		}
	}

	switch res.DMARC {
	case ResultPass:
		rep.Info(CodePass, "DMARC pass for %s: aligned %s", fromDomain, strings.Join(res.AlignedBy, " and "))
	case ResultFail:
		what := res.Disposition
		if res.Percent < 100 {
			what = fmt.Sprintf("%s to %d%% of such mail (the rest: %s)", res.Disposition, res.Percent, res.Policy.weaker())
		}
		rep.Error(CodeFail, "DMARC fail for %s: no aligned SPF or DKIM pass; receivers apply %s (%s=%s)", fromDomain, what, res.PolicySource, res.Policy)
	case ResultTempError:
		rep.Incomplete = true
		rep.Warn(CodeTempError, "DMARC temperror for %s: an aligned identifier could not be checked (DNS)", fromDomain)
	case ResultNone:
		if len(disc.Multiple) > 0 {
			rep.Error(CodeMultiple, "_dmarc.%s publishes more than one DMARC record: receivers apply no DMARC policy", disc.Multiple[0])
		} else {
			rep.Error(CodeNoRecord, "no DMARC record for %s: receivers apply no policy (dmarc=none)", fromDomain)
		}
	}
	if res.DMARC != res.DMARCRFC9989 || res.Disposition != res.DispositionRFC9989 {
		rep.Warn(CodeRFCsDisagree, "RFC 7489 receivers: dmarc=%s, disposition %s; RFC 9989 receivers: dmarc=%s, disposition %s",
			res.DMARC, res.Disposition, res.DMARCRFC9989, res.DispositionRFC9989)
	}
	res.AuthenticationResults = authResults(o, res)
	return res, nil
}

// authResults formats the RFC 8601 Authentication-Results field with
// go-msgauth's authres.
func authResults(o MessageOptions, res *MessageResult) string {
	id := o.AuthServID
	if id == "" {
		id = "relayctl"
	}
	var results []authres.Result
	if res.SPF.Evaluated {
		r := &authres.SPFResult{Value: authres.ResultValue(res.SPF.Result)}
		if res.SPF.Scope == "helo" {
			r.Helo = res.SPF.Domain
		} else {
			r.From = o.MailFrom
		}
		results = append(results, r)
	}
	for _, d := range res.DKIM {
		params := map[string]string{"header.d": d.Domain, "header.s": d.Selector}
		if d.Result != dkim.ResultPass && d.Reason != "" {
			params["reason"] = d.Reason
		}
		results = append(results, &authres.GenericResult{Method: "dkim", Value: authres.ResultValue(d.Result), Params: params})
	}
	if res.FromDomain != "" || res.DMARC != ResultNone {
		results = append(results, &authres.DMARCResult{Value: authres.ResultValue(res.DMARC), From: res.FromDomain})
	}
	return "Authentication-Results: " + authres.Format(id, results)
}
