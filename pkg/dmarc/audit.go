package dmarc

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/relayctl/relayctl/pkg/dnsclient"
	"github.com/relayctl/relayctl/pkg/report"
	"github.com/relayctl/relayctl/pkg/spf"
)

// Finding codes of CheckDomain (besides the record's own, see Parse).
const (
	CodeNoRecord       = "dmarc.no-record"
	CodeMultiple       = "dmarc.multiple-records"
	CodeInvalidVersion = "dmarc.invalid-version"
	CodeOrgFallback    = "dmarc.org-domain-record"
	CodePolicyNone     = "dmarc.policy-none"
	CodeSubdomainNone  = "dmarc.subdomain-policy-none"
	CodePctPartial     = "dmarc.pct-partial"
	CodeNoRUA          = "dmarc.no-rua"
	CodeReportAuth     = "dmarc.report-destination-authorized"
	CodeReportUnauth   = "dmarc.report-destination-unauthorized"
	CodeRetiredTag     = "dmarc.retired-tag"
	CodeTesting        = "dmarc.testing-mode"
	CodeRFCsDisagree   = "dmarc.rfc9989-differs"
	CodeSPFNoAlign     = "dmarc.spf-cannot-align"
	CodeAlignment      = "dmarc.alignment"
	CodeDNS            = "dmarc.dns-error"
)

// Destination is a report URI and whether it may receive reports.
type Destination struct {
	Tag string `json:"tag"` // "rua" or "ruf"
	URI
	// External is true when the destination is outside the policy
	// domain's organization and must authorise it (RFC 7489 §7.1).
	External bool `json:"external"`
	// Authorized is set for external destinations once looked up.
	Authorized *bool `json:"authorized,omitempty"`
}

// DomainResult is the JSON result of `check dmarc DOMAIN`.
type DomainResult struct {
	Domain string `json:"domain"`
	*Discovery
	Disposition        *Disposition  `json:"disposition"`
	DispositionRFC9989 *Disposition  `json:"disposition_rfc9989"`
	Destinations       []Destination `json:"report_destinations"`
	SPFRecord          string        `json:"spf_record,omitempty"`
	Queried            []string      `json:"queried"`
}

// CheckDomain audits the DMARC policy of domain as receivers see it and
// adds findings to rep. DNS failures set rep.Incomplete.
func CheckDomain(ctx context.Context, r dnsclient.Resolver, domain string, rep *report.Report) *DomainResult {
	domain = Normalize(domain)
	res := &DomainResult{Domain: domain}
	d := NewDiscoverer(r)
	disc, err := d.Discover(ctx, domain)
	res.Queried = d.Queried
	if err != nil {
		var qe *dnsclient.QueryError
		if errors.As(err, &qe) {
			rep.Incomplete = true
			rep.Warn(CodeDNS, "%v", err)
		} else {
			rep.Error(CodeDNS, "%v", err)
		}
		return res
	}
	res.Discovery = disc

	for _, name := range slices.Sorted(maps.Keys(disc.Broken)) {
		recs := disc.Broken[name]
		rep.Error(CodeInvalidVersion, "_dmarc.%s holds %q: the version must be exactly v=DMARC1 (upper case) and come first, so receivers ignore it", name, recs[0])
	}
	if len(disc.Multiple) > 0 {
		rep.Error(CodeMultiple, "_dmarc.%s publishes more than one DMARC record: receivers apply no DMARC policy at all (RFC 7489 §6.6.3); keep exactly one", disc.Multiple[0])
	}
	if disc.Policy == nil && disc.BisPolicy == nil {
		if len(disc.Multiple) == 0 {
			where := "_dmarc." + domain
			if disc.OrgDomain != domain {
				where += " or _dmarc." + disc.OrgDomain
			}
			rep.Error(CodeNoRecord, "no DMARC record at %s: receivers apply no policy and anyone can use %s in From", where, domain)
		}
		return res
	}

	f := disc.Policy
	if f == nil {
		f = disc.BisPolicy
	}
	rec := f.Record
	for _, p := range rec.Problems {
		rep.Findings = append(rep.Findings, p)
	}
	if f.Domain != domain {
		src := "p"
		if rec.SubdomainPolicy != "" {
			src = "sp"
		}
		rep.Info(CodeOrgFallback, "no record at _dmarc.%s; the record of %s applies (its %s= policy for subdomains)", domain, f.Domain, src)
	}

	if dp, ok := disc.Disposition7489(); ok {
		res.Disposition = &dp
	}
	if dp, ok := disc.Disposition9989(false); ok {
		res.DispositionRFC9989 = &dp
	}
	eff := rec.Policy
	if res.Disposition != nil {
		eff = res.Disposition.Policy
	}
	switch {
	case !rec.ValidPolicy:
	case eff == PolicyNone:
		rep.Warn(CodePolicyNone, "policy is none (monitoring only): failing mail is still delivered; move to quarantine, then reject, once reports show all your mail passes")
	case rec.SubdomainPolicy == PolicyNone && f.Domain == domain:
		rep.Warn(CodeSubdomainNone, "p=%s but sp=none: mail from any made-up subdomain of %s is not protected", rec.Policy, domain)
	}
	if rec.Has("pct") && rec.Percent < 100 {
		rep.Warn(CodePctPartial, "pct=%d: RFC 7489 receivers apply %s to only %d%% of failing mail (the rest gets %s); RFC 9989 drops pct, use t=y for testing instead", rec.Percent, eff, rec.Percent, eff.weaker())
	}
	if rec.Testing {
		rep.Warn(CodeTesting, "t=y (testing): RFC 9989 receivers apply %s instead of %s", eff.weaker(), eff)
	}
	for _, t := range []string{"pct", "rf", "ri"} {
		if rec.Has(t) {
			rep.Info(CodeRetiredTag, "%s= is retired by RFC 9989 (receivers following it ignore the tag)", t)
		}
	}
	if len(rec.RUA) == 0 {
		rep.Warn(CodeNoRUA, "no rua= aggregate report address: you will not see who sends mail as %s or whether it passes", domain)
	}
	checkDestinations(ctx, r, f.Domain, rec, res, rep)
	compareRFCs(disc, rep)
	checkSPFAlignment(ctx, r, domain, rec, res, rep)
	return res
}

func checkDestinations(ctx context.Context, r dnsclient.Resolver, policyDomain string, rec *Record, res *DomainResult, rep *report.Report) {
	for _, tag := range []string{"rua", "ruf"} {
		uris := rec.RUA
		if tag == "ruf" {
			uris = rec.RUF
		}
		for _, u := range uris {
			dst := Destination{Tag: tag, URI: u, External: NeedsAuthorization(policyDomain, u.Domain)}
			if dst.External {
				ok, err := ReportAuthorized(ctx, r, policyDomain, u.Domain)
				if err != nil {
					rep.Incomplete = true
					rep.Warn(CodeDNS, "could not check whether %s accepts reports for %s: %v", u.Domain, policyDomain, err)
				} else {
					dst.Authorized = &ok
					if ok {
						rep.Info(CodeReportAuth, "%s=%s is outside %s and authorises it (%s._report._dmarc.%s)", tag, u.Address, policyDomain, policyDomain, u.Domain)
					} else {
						rep.Warn(CodeReportUnauth, "%s=%s is outside %s and has not authorised it: receivers send no reports there until %s publishes TXT \"v=DMARC1\" at %s._report._dmarc.%s (RFC 7489 §7.1)", tag, u.Address, policyDomain, u.Domain, policyDomain, u.Domain)
					}
				}
			}
			res.Destinations = append(res.Destinations, dst)
		}
	}
}

// compareRFCs warns where RFC 7489 and RFC 9989 receivers disagree.
func compareRFCs(disc *Discovery, rep *report.Report) {
	var diffs []string
	if disc.OrgDomain != disc.BisOrgDomain {
		diffs = append(diffs, fmt.Sprintf("the organizational domain is %s by the public suffix list (RFC 7489) but %s by the DNS tree walk (RFC 9989), which changes relaxed alignment", disc.OrgDomain, disc.BisOrgDomain))
	}
	p7, p9 := disc.Policy, disc.BisPolicy
	switch {
	case p7 == nil && p9 != nil && disc.Ignored != "":
		diffs = append(diffs, fmt.Sprintf("RFC 7489 receivers ignore the record at _dmarc.%s (no valid p= or sp= and no rua=, RFC 7489 §6.6.3), RFC 9989 receivers apply it", disc.Ignored))
	case p7 == nil && p9 != nil:
		diffs = append(diffs, fmt.Sprintf("RFC 7489 receivers find no record, RFC 9989 receivers use the one at _dmarc.%s", p9.Domain))
	case p7 != nil && p9 == nil:
		diffs = append(diffs, fmt.Sprintf("RFC 7489 receivers use the record at _dmarc.%s, RFC 9989 receivers find none", p7.Domain))
	case p7 != nil && p9 != nil && p7.Domain != p9.Domain:
		diffs = append(diffs, fmt.Sprintf("RFC 7489 receivers use the record at _dmarc.%s, RFC 9989 receivers the one at _dmarc.%s", p7.Domain, p9.Domain))
	}
	d7, ok7 := disc.Disposition7489()
	d9, ok9 := disc.Disposition9989(false)
	if ok7 && ok9 && (d7.Applied != d9.Applied || d7.Percent != d9.Percent) {
		diffs = append(diffs, fmt.Sprintf("failing mail gets %s under RFC 7489 but %s under RFC 9989", d7, d9))
	}

	for _, d := range diffs {
		rep.Warn(CodeRFCsDisagree, "%s", d)
	}
}

// checkSPFAlignment reports what the alignment modes mean for SPF and
// DKIM, and whether SPF can give the domain itself an aligned pass.
func checkSPFAlignment(ctx context.Context, r dnsclient.Resolver, domain string, rec *Record, res *DomainResult, rep *report.Report) {
	if rec.ADKIM == Strict {
		rep.Info(CodeAlignment, "adkim=s: only DKIM signatures with d=%s exactly align (not a parent or subdomain)", domain)
	} else {
		rep.Info(CodeAlignment, "adkim=r: DKIM signatures with d= anywhere in %s align", OrganizationalDomain(domain))
	}
	txts, _, err := dnsclient.LookupTXT(ctx, r, domain)
	if err != nil {
		rep.Incomplete = true
		rep.Warn(CodeDNS, "could not read the SPF record of %s: %v", domain, err)
		return
	}
	var spfs []string
	for _, t := range txts {
		if spf.IsSPF(t) {
			spfs = append(spfs, t)
		}
	}
	if len(spfs) == 1 {
		res.SPFRecord = spfs[0]
	}
	canPass := len(spfs) == 1 && spfCanPass(spfs[0])
	if rec.ASPF == Strict {
		if !canPass {
			why := "publishes no SPF record"
			if len(spfs) > 1 {
				why = "publishes several SPF records (permerror)"
			} else if len(spfs) == 1 {
				why = fmt.Sprintf("has an SPF record that never passes (%q)", spfs[0])
			}
			rep.Warn(CodeSPFNoAlign, "aspf=s but %s %s: SPF can never give an aligned pass, so every message needs a DKIM signature with d=%s", domain, why, domain)
			return
		}
		rep.Info(CodeAlignment, "aspf=s: SPF aligns only when the MAIL FROM (return-path) domain is %s exactly", domain)
		return
	}
	rep.Info(CodeAlignment, "aspf=r: SPF aligns when the MAIL FROM (return-path) domain is anywhere in %s", OrganizationalDomain(domain))
}

// spfCanPass reports whether an SPF record (parsed by pkg/spf) has any
// term that can produce a pass: a mechanism with the + qualifier, or a
// redirect. A record that does not parse is a permerror and never passes.
// Whether it passes for a given IP is check_host()'s job.
func spfCanPass(record string) bool {
	rec, err := spf.Parse(record)
	if err != nil {
		return false
	}
	if rec.Redirect != "" {
		return true
	}
	for _, m := range rec.Mechanisms {
		if m.Qualifier == '+' {
			return true
		}
	}
	return false
}
