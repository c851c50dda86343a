// Package preflight runs every check a receiver applies to a sending
// domain, concurrently, and rolls them up into one report: SPF (RFC 7208,
// pkg/spf), DKIM key records (RFC 6376, pkg/dkim), DMARC (RFC 7489 /
// RFC 9989, pkg/dmarc), MX (RFC 5321 §5.1, RFC 7505, pkg/mx) and, for a
// relay IP, reverse DNS (pkg/rdns) and DNS blocklists (RFC 5782,
// pkg/dnsbl). With a sample message it also evaluates DMARC alignment of
// that message. It is what a CI job runs before a release or a DNS change.
package preflight

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/relayctl/relayctl/pkg/dkim"
	"github.com/relayctl/relayctl/pkg/dmarc"
	"github.com/relayctl/relayctl/pkg/dnsbl"
	"github.com/relayctl/relayctl/pkg/dnsclient"
	"github.com/relayctl/relayctl/pkg/mx"
	"github.com/relayctl/relayctl/pkg/rdns"
	"github.com/relayctl/relayctl/pkg/report"
	"github.com/relayctl/relayctl/pkg/spf"
)

// Check names, in report order.
const (
	CheckSPF       = "spf"
	CheckDKIM      = "dkim"
	CheckDMARC     = "dmarc"
	CheckMX        = "mx"
	CheckPTR       = "ptr"
	CheckBlocklist = "blocklist"
	CheckMessage   = "message"
)

// Options say what to check.
type Options struct {
	Domain   string
	Resolver dnsclient.Resolver
	// Selectors are the DKIM selectors to check; nil tries common ones.
	Selectors []string
	// IP is the relay's public address: SPF authorisation, PTR/FCrDNS
	// and blocklists are checked for it. nil skips those.
	IP net.IP
	// HELO is the relay's HELO/EHLO name (defaults to the PTR check
	// without a HELO comparison).
	HELO string
	// Blocklist asks these DNS blocklists about IP; nil skips it.
	Blocklist *dnsbl.Checker
	// Message is a sample message to evaluate for DMARC alignment (sent
	// from IP with MailFrom when IP is set); nil skips it.
	Message  []byte
	MailFrom string
	// Ignore drops findings with these codes (report.Matches patterns).
	Ignore []string
	Now    func() time.Time
}

// Check is one section of the report.
type Check struct {
	Name     string           `json:"check"`
	Status   report.Status    `json:"status"`
	Findings []report.Finding `json:"findings"`
	Result   any              `json:"result"`
	// Incomplete is set when the check could not finish (DNS).
	Incomplete bool `json:"incomplete,omitempty"`
}

// Result is the JSON result of `check all`.
type Result struct {
	Domain string        `json:"domain"`
	IP     string        `json:"ip,omitempty"`
	Status report.Status `json:"status"`
	Checks []*Check      `json:"checks"`
}

// Run runs the checks concurrently and returns them in a fixed order.
func Run(ctx context.Context, o Options) *Result {
	o.Domain = dmarc.Normalize(o.Domain)
	type job struct {
		name string
		run  func(rep *report.Report) any
	}
	jobs := []job{
		{CheckSPF, func(rep *report.Report) any { return checkSPF(ctx, o, rep) }},
		{CheckDKIM, func(rep *report.Report) any { return checkDKIM(ctx, o, rep) }},
		{CheckDMARC, func(rep *report.Report) any { return dmarc.CheckDomain(ctx, o.Resolver, o.Domain, rep) }},
		{CheckMX, func(rep *report.Report) any { return mx.Check(ctx, o.Resolver, o.Domain, rep) }},
	}
	if o.IP != nil {
		jobs = append(jobs, job{CheckPTR, func(rep *report.Report) any { return rdns.Check(ctx, o.Resolver, o.IP, o.HELO, rep) }})
		if o.Blocklist != nil {
			jobs = append(jobs, job{CheckBlocklist, func(rep *report.Report) any { return checkBlocklist(ctx, o, rep) }})
		}
	}
	if o.Message != nil {
		jobs = append(jobs, job{CheckMessage, func(rep *report.Report) any { return checkMessage(ctx, o, rep) }})
	}

	res := &Result{Domain: o.Domain, Checks: make([]*Check, len(jobs))}
	if o.IP != nil {
		res.IP = o.IP.String()
	}
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep := report.New("check "+j.name, o.Domain)
			out := j.run(rep)
			rep.Ignore(o.Ignore)
			rep.Finish()
			res.Checks[i] = &Check{Name: j.name, Status: rep.Status, Findings: rep.Findings, Result: out, Incomplete: rep.Incomplete}
		}()
	}
	wg.Wait()
	var sts []report.Status
	for _, c := range res.Checks {
		sts = append(sts, c.Status)
	}
	res.Status = report.Worst(sts...)
	return res
}

// Findings returns every check's findings, in order.
func (r *Result) Findings() []report.Finding {
	out := []report.Finding{}
	for _, c := range r.Checks {
		out = append(out, c.Findings...)
	}
	return out
}

// Incomplete reports whether any check could not finish.
func (r *Result) Incomplete() bool {
	for _, c := range r.Checks {
		if c.Incomplete {
			return true
		}
	}
	return false
}

// SPFResult is the spf section's result.
type SPFResult struct {
	Record      string    `json:"record"`
	Lookups     int       `json:"lookups"`
	VoidLookups int       `json:"void_lookups"`
	Tree        *spf.Node `json:"tree,omitempty"`
	// Evaluation is check_host() for the relay IP (with --ip).
	Evaluation *spf.Outcome `json:"evaluation,omitempty"`
}

// checkSPF audits the record tree (lookup budget, syntax) and, with an
// IP, whether the relay may send for the domain; finding codes are those
// of `check spf`.
func checkSPF(ctx context.Context, o Options, rep *report.Report) *SPFResult {
	out := &SPFResult{}
	audit, err := (&spf.Auditor{Resolver: o.Resolver}).AuditInto(ctx, o.Domain, rep)
	if audit != nil {
		out.Record, out.Lookups, out.VoidLookups, out.Tree = audit.Record, audit.Lookups, audit.VoidLookups, audit.Tree
	}
	if o.IP == nil || err != nil {
		return out
	}
	// The relay sends as <anything>@domain: check_host() with the domain
	// as the MAIL FROM domain (RFC 7208 §4.1).
	c := &spf.Checker{Resolver: o.Resolver, HELO: o.HELO, Now: o.Now}
	oc := c.CheckHost(ctx, o.IP, o.Domain, "postmaster@"+o.Domain)
	out.Evaluation = &oc
	what := fmt.Sprintf("check_host(%s, %s) = %s", o.IP, o.Domain, oc.Result)
	if oc.Matched != "" {
		what += fmt.Sprintf(" (matched %q in %s)", oc.Matched, oc.Domain)
	}
	if oc.Err != nil {
		what += ": " + oc.Err.Error()
	}
	code := "spf.eval-" + string(oc.Result)
	switch oc.Result {
	case spf.Pass:
		rep.Info(code, "the relay IP may send for %s: %s", o.Domain, what)
	case spf.Fail, spf.PermError:
		rep.Error(code, "the relay IP is not authorised for %s: %s", o.Domain, what)
	case spf.TempError:
		rep.Incomplete = true
		rep.Warn(code, "%s", what)
	default:
		rep.Warn(code, "the relay IP is not authorised for %s (receivers do not trust it): %s", o.Domain, what)
	}
	return out
}

// DKIMResult is the dkim section's result.
type DKIMResult struct {
	Tried      []string               `json:"tried"`
	Discovered bool                   `json:"discovered"`
	Selectors  []*dkim.SelectorResult `json:"selectors"`
}

// checkDKIM checks the given selectors' key records, or looks for common
// selectors when none are given; finding codes are those of `check dkim`.
func checkDKIM(ctx context.Context, o Options, rep *report.Report) *DKIMResult {
	out := &DKIMResult{Selectors: []*dkim.SelectorResult{}}
	var lookupErr error
	if len(o.Selectors) == 0 {
		out.Discovered, out.Tried = true, dkim.CommonSelectors
		found, err := dkim.Discover(ctx, o.Resolver, o.Domain, nil)
		lookupErr = err
		out.Selectors = append(out.Selectors, found...)
		if len(found) == 0 && err == nil {
			rep.Warn(dkim.CodeNoSelector, "none of %d common selectors has a key record under %s._domainkey; pass the selector your signer uses with --selector", len(dkim.CommonSelectors), o.Domain)
		}
	} else {
		out.Tried = o.Selectors
		for _, s := range o.Selectors {
			sr, err := dkim.CheckSelector(ctx, o.Resolver, o.Domain, s)
			if err != nil {
				if lookupErr == nil {
					lookupErr = err
				}
				continue
			}
			out.Selectors = append(out.Selectors, sr)
		}
	}
	for _, sr := range out.Selectors {
		for _, f := range sr.Findings {
			rep.Add(f.Code, f.Severity, "%s: %s", sr.Selector, f.Message)
		}
	}
	if lookupErr != nil {
		rep.Incomplete = true
		rep.Warn("dkim.lookup-failed", "%v", lookupErr)
	}
	return out
}

// checkBlocklist asks the blocklists about the relay IP; finding codes
// are those of `relayctl blocklist`.
func checkBlocklist(ctx context.Context, o Options, rep *report.Report) *dnsbl.Result {
	a, ok := netip.AddrFromSlice(o.IP)
	if !ok {
		rep.Error("blocklist.invalid-target", "%s is not an IP address", o.IP)
		return nil
	}
	a = a.Unmap()
	res := o.Blocklist.Check(ctx, []dnsbl.Target{{Input: a.String(), Addr: a}})
	var order []string
	first := map[string]string{} // list (zone) -> its first error
	for _, q := range res.Queries {
		switch q.Status() {
		case "listed":
			msg := fmt.Sprintf("%s is listed on %s (%s): %s", q.Target, q.List, q.Zone, q.Meaning)
			if q.Reason != "" {
				msg += " — " + q.Reason
			}
			rep.Error("blocklist.listed", "%s", msg)
		case "error":
			k := q.List + " (" + q.Zone + ")"
			if _, seen := first[k]; !seen {
				order = append(order, k)
				first[k] = q.Error
			}
		}
	}
	for _, k := range order {
		rep.Incomplete = true
		rep.Warn("blocklist.query-failed", "%s gave no usable answer: %s", k, first[k])
	}
	return res
}

// checkMessage evaluates the sample message for DMARC.
func checkMessage(ctx context.Context, o Options, rep *report.Report) *dmarc.MessageResult {
	mo := dmarc.MessageOptions{IP: o.IP, HELO: o.HELO, MailFrom: o.MailFrom, Now: o.Now}
	if o.IP != nil && o.MailFrom == "" {
		mo.MailFrom = "postmaster@" + o.Domain
	}
	res, err := dmarc.CheckMessage(ctx, o.Resolver, o.Message, mo, rep)
	if err != nil {
		rep.Error("dmarc.message-unreadable", "%v", err)
		return nil
	}
	if res.FromDomain != "" && res.FromDomain != o.Domain && !strings.HasSuffix(res.FromDomain, "."+o.Domain) {
		rep.Warn("dmarc.message-other-domain", "the sample message is From %s, not %s: its verdict is about %s", res.FromDomain, o.Domain, res.FromDomain)
	}
	return res
}
