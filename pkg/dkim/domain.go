package dkim

import (
	"context"
	"fmt"

	"github.com/relayctl/relayctl/pkg/dnsclient"
	"github.com/relayctl/relayctl/pkg/report"
)

// DomainResult is the audit of a domain's DKIM key records.
type DomainResult struct {
	Domain     string            `json:"domain"`
	Discovered bool              `json:"discovered"` // selectors came from CommonSelectors
	Tried      []string          `json:"tried"`
	Wildcard   bool              `json:"wildcard,omitempty"`
	Selectors  []*SelectorResult `json:"selectors"` // those checked (discovery: those found)
	// Findings are the domain-level ones (dkim.no-selector-found,
	// dkim.wildcard); each selector carries its own.
	Findings []report.Finding `json:"-"`
}

// CheckDomain audits the given selectors' records, or, when selectors is
// empty, discovers which CommonSelectors have one (after probing for a
// _domainkey wildcard, which would make them all appear). A DNS failure
// is returned as the error with the result of everything that worked.
func CheckDomain(ctx context.Context, r dnsclient.Resolver, domain string, selectors []string) (*DomainResult, error) {
	res := &DomainResult{Domain: domain, Selectors: []*SelectorResult{}, Findings: []report.Finding{}}
	var firstErr error
	keep := func(err error) {
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if len(selectors) > 0 {
		res.Tried = selectors
		for _, s := range selectors {
			sr, err := CheckSelector(ctx, r, domain, s)
			keep(err)
			if err == nil {
				res.Selectors = append(res.Selectors, sr)
			}
		}
		return res, firstErr
	}
	res.Discovered, res.Tried = true, CommonSelectors
	wild, err := HasWildcard(ctx, r, domain)
	keep(err)
	if wild {
		res.Wildcard = true
		res.Findings = append(res.Findings, report.Finding{Code: CodeWildcard, Severity: report.SeverityWarning,
			Message: fmt.Sprintf("*._domainkey.%s answers for any selector, so discovery cannot tell which selectors are really used; pass --selector", domain)})
	}
	found, err := Discover(ctx, r, domain, nil)
	keep(err)
	res.Selectors = append(res.Selectors, found...)
	if len(found) == 0 && err == nil {
		res.Findings = append(res.Findings, report.Finding{Code: CodeNoSelector, Severity: report.SeverityWarning,
			Message: fmt.Sprintf("none of %d common selectors has a key record at SELECTOR._domainkey.%s; selectors are arbitrary, so pass the one your signer uses with --selector", len(CommonSelectors), domain)})
	}
	return res, firstErr
}

// MessageFindings turns a message's verifications into findings: with no
// signature, or none passing, each failure is an error (the message fails
// DKIM); beside a passing signature failures are warnings. When nothing
// passes and every failure is a temperror, incomplete is set instead (the
// check could not complete). Passing signatures add dkim.testing for
// t=y keys and dkim.key-short for RSA keys under 2048 bits.
func MessageFindings(vs []Verification) (findings []report.Finding, incomplete bool) {
	findings = []report.Finding{}
	add := func(code string, sev report.Severity, format string, args ...any) {
		findings = append(findings, report.Finding{Code: code, Severity: sev, Message: fmt.Sprintf(format, args...)})
	}
	if len(vs) == 0 {
		add(CodeNoSignature, report.SeverityError, "the message has no DKIM-Signature header field")
		return findings, false
	}
	passed, temp, other := 0, 0, 0
	for _, v := range vs {
		switch v.Result {
		case ResultPass:
			passed++
		case ResultTempError:
			temp++
		default:
			other++
		}
	}
	for i, v := range vs {
		who := fmt.Sprintf("signature %d (d=%s s=%s)", i+1, v.Domain, v.Selector)
		if v.Result == ResultPass {
			if v.Testing {
				add(CodeTesting, report.SeverityInfo, "%s: the key has t=y (testing); receivers treat the mail as unsigned", who)
			}
			if v.KeyBits > 0 && v.KeyBits < RecommendedRSABits && len(v.Algorithm) > 4 && v.Algorithm[:4] == "rsa-" {
				add(CodeKeyShort, report.SeverityWarning, "%s: RSA key is %d bits; use at least 2048 (RFC 8301 §3.2)", who, v.KeyBits)
			}
			continue
		}
		sev := report.SeverityError
		if passed > 0 || v.Result == ResultTempError {
			sev = report.SeverityWarning // another signature passes, or DNS failed: not a DKIM failure
		}
		add(v.Code, sev, "%s: %s: %s", who, v.Result, v.Reason)
	}
	return findings, passed == 0 && temp > 0 && other == 0
}
