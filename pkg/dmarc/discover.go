package dmarc

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/miekg/dns"
	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"

	"github.com/relayctl/relayctl/pkg/dnsclient"
)

// Normalize lower-cases a domain, drops a trailing dot and turns an
// internationalized name into its A-label form (RFC 5891), the form
// published in the DNS and compared for alignment.
func Normalize(domain string) string {
	d := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(domain)), ".")
	for i := 0; i < len(d); i++ {
		if d[i] >= 0x80 {
			if a, err := idna.Lookup.ToASCII(d); err == nil {
				return a
			}
			break
		}
	}
	return d
}

// OrganizationalDomain is the RFC 7489 §3.2 organizational domain: the
// public suffix of domain plus one label, from the public suffix list
// (golang.org/x/net/publicsuffix, ICANN and private sections). A domain
// that is itself a public suffix is its own organizational domain.
func OrganizationalDomain(domain string) string {
	d := Normalize(domain)
	org, err := publicsuffix.EffectiveTLDPlusOne(d)
	if err != nil {
		return d
	}
	return org
}

// Aligned reports whether an authenticated identifier (a DKIM d= domain,
// an SPF-authenticated domain) is aligned with the RFC 5322.From domain
// (RFC 7489 §3.1): strict needs the same name; relaxed the same
// organizational domain as computed by org.
func Aligned(from, id string, mode Alignment, org func(string) string) bool {
	from, id = Normalize(from), Normalize(id)
	if from == "" || id == "" {
		return false
	}
	if from == id {
		return true
	}
	if mode == Strict {
		return false
	}
	return org(from) == org(id)
}

// Found is a DMARC record found in the DNS.
type Found struct {
	// Domain is the name the record is published for (without "_dmarc.").
	Domain string  `json:"domain"`
	Record *Record `json:"record"`
}

// level is what one _dmarc name held.
type level struct {
	records   []*Record // valid DMARC records
	broken    []string  // TXT records that look like DMARC but are not v=DMARC1
	parseErrs []error
}

// Discoverer looks up DMARC records and remembers what it asked, so the
// RFC 7489 and RFC 9989 procedures share queries. It is not safe for
// concurrent use; make one per check.
type Discoverer struct {
	r     dnsclient.Resolver
	cache map[string]*level
	// Queried lists the _dmarc names asked, in order.
	Queried []string
}

// NewDiscoverer returns a Discoverer asking r.
func NewDiscoverer(r dnsclient.Resolver) *Discoverer {
	return &Discoverer{r: r, cache: map[string]*level{}}
}

// ErrMultiple means a name holds more than one DMARC record: RFC 7489
// §6.6.3 step 5 then applies no DMARC processing at all.
var ErrMultiple = errors.New("dmarc: more than one DMARC record")

func (d *Discoverer) at(ctx context.Context, domain string) (*level, error) {
	if l, ok := d.cache[domain]; ok {
		return l, nil
	}
	name := "_dmarc." + domain
	d.Queried = append(d.Queried, name)
	txts, _, err := dnsclient.LookupTXT(ctx, d.r, name)
	if err != nil {
		return nil, fmt.Errorf("dmarc: looking up %s: %w", name, err)
	}
	l := &level{}
	for _, t := range txts {
		if !IsDMARC(t) {
			continue // RFC 7489 §6.6.3 step 2: other records are discarded
		}
		rec, err := Parse(t)
		if err != nil {
			l.broken = append(l.broken, t)
			l.parseErrs = append(l.parseErrs, err)
			continue
		}
		l.records = append(l.records, rec)
	}
	d.cache[domain] = l
	return l, nil
}

// Discovery is the outcome of policy discovery for one author domain
// under both RFC 7489 and RFC 9989.
type Discovery struct {
	Domain string `json:"domain"`

	// RFC 7489 §6.6.3: the author domain, then the PSL organizational domain.
	OrgDomain string `json:"org_domain"`
	Policy    *Found `json:"record"`

	// RFC 9989 §4.10: the DNS tree walk.
	BisOrgDomain string `json:"org_domain_rfc9989"`
	BisPolicy    *Found `json:"record_rfc9989"`

	// Ignored names the domain whose record RFC 7489 receivers ignore
	// (invalid p or sp and no valid rua, §6.6.3 step 6).
	Ignored string `json:"ignored_rfc7489,omitempty"`
	// Multiple names the domains that publish more than one DMARC record.
	Multiple []string `json:"multiple,omitempty"`
	// Broken maps domains to TXT records that start like a DMARC record
	// but are not "v=DMARC1" and so are ignored.
	Broken map[string][]string `json:"broken,omitempty"`
}

// walk returns the names the RFC 9989 §4.10 tree walk queries for domain:
// the domain itself, then (after jumping to the 7 rightmost labels when
// it has 8 or more) each parent down to the single-label TLD: at most 8.
func walk(domain string) []string {
	labels := strings.Split(domain, ".")
	out := []string{domain}
	start := len(labels) - 1
	if start > 7 {
		start = 7
	}
	for k := start; k >= 1; k-- {
		out = append(out, strings.Join(labels[len(labels)-k:], "."))
	}
	return out
}

// Discover finds the DMARC record that applies to mail from domain, by
// RFC 7489 and by RFC 9989. A DNS failure (SERVFAIL, timeout) returns an
// error: receivers then treat the message as temperror.
func (d *Discoverer) Discover(ctx context.Context, domain string) (*Discovery, error) {
	domain = Normalize(domain)
	if !validDomain(domain) {
		return nil, fmt.Errorf("dmarc: %q is not a valid domain name", domain)
	}
	disc := &Discovery{Domain: domain, OrgDomain: OrganizationalDomain(domain)}
	note := func(name string, l *level) {
		if len(l.broken) > 0 {
			if disc.Broken == nil {
				disc.Broken = map[string][]string{}
			}
			disc.Broken[name] = l.broken
		}
		if len(l.records) > 1 && !containsStr(disc.Multiple, name) {
			disc.Multiple = append(disc.Multiple, name)
		}
	}

	// RFC 7489 §6.6.3.
	for _, name := range uniq(domain, disc.OrgDomain) {
		l, err := d.at(ctx, name)
		if err != nil {
			return nil, err
		}
		note(name, l)
		if len(l.records) > 1 {
			break // step 5: no DMARC processing
		}
		if len(l.records) == 1 {
			if l.records[0].UsableBy7489() {
				disc.Policy = &Found{Domain: name, Record: l.records[0]}
			} else {
				disc.Ignored = name
			}
			break
		}
	}

	// RFC 9989 §4.10.1 policy discovery and §4.10.2 organizational domain.
	org, pol, err := d.treeWalk(ctx, domain, note)
	if err != nil {
		return nil, err
	}
	disc.BisOrgDomain, disc.BisPolicy = org, pol
	return disc, nil
}

func (d *Discoverer) treeWalk(ctx context.Context, domain string, note func(string, *level)) (org string, policy *Found, err error) {
	names := walk(domain)
	last := ""
	stopPolicy := false
	for i, name := range names {
		l, err := d.at(ctx, name)
		if err != nil {
			return "", nil, err
		}
		if note != nil {
			note(name, l)
		}
		if len(l.records) > 1 {
			// Several records: no usable policy at this name; like RFC
			// 7489 §6.6.3 no policy applies if it is the first found.
			stopPolicy = true
			continue
		}
		if len(l.records) == 0 {
			continue
		}
		rec := l.records[0]
		if policy == nil && !stopPolicy {
			policy = &Found{Domain: name, Record: rec}
		}
		switch rec.PSD {
		case "n": // §4.10.2: this is the organizational domain
			return name, policy, nil
		case "y": // a public suffix operator: the org domain is one label below
			if i == 0 {
				return name, policy, nil
			}
			return oneBelow(domain, name), policy, nil
		}
		last = name
	}
	if last == "" {
		last = domain
	}
	return last, policy, nil
}

// oneBelow returns the ancestor of domain that has one label more than
// suffix.
func oneBelow(domain, suffix string) string {
	labels := strings.Split(domain, ".")
	n := len(strings.Split(suffix, ".")) + 1
	if n > len(labels) {
		return domain
	}
	return strings.Join(labels[len(labels)-n:], ".")
}

// BisOrgDomain is the RFC 9989 §4.10.2 organizational domain of domain,
// found by the DNS tree walk.
func (d *Discoverer) BisOrgDomain(ctx context.Context, domain string) (string, error) {
	domain = Normalize(domain)
	org, _, err := d.treeWalk(ctx, domain, nil)
	return org, err
}

func uniq(a, b string) []string {
	if a == b {
		return []string{a}
	}
	return []string{a, b}
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Disposition is the handling a receiver applies to a message that fails
// DMARC.
type Disposition struct {
	// Policy is the requested policy that applies: the value of Source.
	Policy Policy `json:"policy"`
	// Source is the tag it came from: "p", "sp" or "np".
	Source string `json:"source"`
	// Applied is what a failing message gets: Policy, or one step milder
	// under RFC 9989 t=y, or (RFC 7489) for messages outside pct.
	Applied Policy `json:"applied"`
	// Percent is RFC 7489 pct; under RFC 9989 it is always 100.
	Percent int `json:"pct"`
	// Remainder is what the 100-pct% not sampled get (RFC 7489 §6.6.4).
	Remainder Policy `json:"remainder,omitempty"`
}

// String renders "reject", "quarantine (pct=50; others none)".
func (d Disposition) String() string {
	if d.Percent < 100 {
		return fmt.Sprintf("%s for %d%%, %s for the rest (pct=%d)", d.Applied, d.Percent, d.Remainder, d.Percent)
	}
	return string(d.Applied)
}

// Disposition7489 is the disposition by RFC 7489: sp applies to a
// subdomain whose record was found at the organizational domain (§6.3),
// and pct samples which failing messages get it (§6.6.4).
func (disc *Discovery) Disposition7489() (Disposition, bool) {
	f := disc.Policy
	if f == nil {
		return Disposition{}, false
	}
	rec := f.Record
	d := Disposition{Policy: rec.Policy, Source: "p", Percent: rec.Percent}
	if !rec.ValidPolicy || rec.InvalidSubdomainPolicy {
		// §6.6.3 step 6: act as if p=none was published.
		d = Disposition{Policy: PolicyNone, Source: "p", Percent: 100}
	} else if f.Domain != disc.Domain && rec.SubdomainPolicy != "" {
		d.Policy, d.Source = rec.SubdomainPolicy, "sp"
	}
	d.Applied = d.Policy
	if d.Percent < 100 {
		d.Remainder = d.Policy.weaker()
	}
	return d, true
}

// Disposition9989 is the disposition by RFC 9989: for a domain whose
// record was found higher up the tree, np applies if the domain does not
// exist and np is published, else sp, else p; t=y makes it one step
// milder (§5.3); pct is no longer used.
func (disc *Discovery) Disposition9989(nonexistent bool) (Disposition, bool) {
	f := disc.BisPolicy
	if f == nil {
		return Disposition{}, false
	}
	rec := f.Record
	d := Disposition{Policy: rec.Policy, Source: "p", Percent: 100}
	if f.Domain != disc.Domain {
		switch {
		case nonexistent && rec.NonexistentPolicy != "":
			d.Policy, d.Source = rec.NonexistentPolicy, "np"
		case rec.SubdomainPolicy != "":
			d.Policy, d.Source = rec.SubdomainPolicy, "sp"
		}
	} else if nonexistent && rec.NonexistentPolicy != "" {
		d.Policy, d.Source = rec.NonexistentPolicy, "np"
	}
	d.Applied = d.Policy
	if rec.Testing {
		d.Applied = d.Policy.weaker()
	}
	return d, true
}

// Nonexistent reports whether domain does not exist in the RFC 9989
// sense (§3.2.11): NXDOMAIN for A, AAAA and MX.
func Nonexistent(ctx context.Context, r dnsclient.Resolver, domain string) (bool, error) {
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeMX} {
		resp, err := r.Exchange(ctx, domain, t)
		if err != nil {
			return false, fmt.Errorf("dmarc: does %s exist: %w", domain, err)
		}
		if resp.Outcome != dnsclient.OutcomeNXDomain {
			return false, nil
		}
	}
	return true, nil
}

// ReportAuthorized asks whether destDomain accepts DMARC reports about
// policyDomain (RFC 7489 §7.1): a TXT record starting with "v=DMARC1" at
// policyDomain._report._dmarc.destDomain.
func ReportAuthorized(ctx context.Context, r dnsclient.Resolver, policyDomain, destDomain string) (bool, error) {
	name := Normalize(policyDomain) + "._report._dmarc." + Normalize(destDomain)
	txts, _, err := dnsclient.LookupTXT(ctx, r, name)
	if err != nil {
		return false, fmt.Errorf("dmarc: looking up %s: %w", name, err)
	}
	for _, t := range txts {
		if _, err := Parse(t); err == nil {
			return true, nil
		}
	}
	return false, nil
}

// NeedsAuthorization reports whether a report destination is outside the
// policy domain's organization and so must authorise it (RFC 7489 §7.1).
func NeedsAuthorization(policyDomain, destDomain string) bool {
	return OrganizationalDomain(policyDomain) != OrganizationalDomain(destDomain)
}
