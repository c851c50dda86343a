package spf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/miekg/dns"

	"github.com/relayctl/relayctl/pkg/dnsclient"
	"github.com/relayctl/relayctl/pkg/report"
)

// Audit limits that keep a hostile tree from running away.
const (
	maxAuditDepth = 20  // nested include/redirect levels followed
	maxAuditNodes = 200 // records fetched in one audit
	auditParallel = 16  // DNS queries in flight at once
)

// Node is one record in the include/redirect tree with what it costs of
// the lookup budget (RFC 7208 §4.6.4).
type Node struct {
	Domain string `json:"domain"`
	// Via is how the parent reaches this node: "root", "include" or
	// "redirect"; Term is the parent's term ("include:_spf.example.net").
	Via    string `json:"via"`
	Term   string `json:"term,omitempty"`
	Record string `json:"record,omitempty"`
	// Strings are the record's TXT character-strings as published.
	Strings []string `json:"strings,omitempty"`
	// Cost counts the DNS-querying terms in this record itself;
	// Lookups adds the subtree. VoidLookups counts void answers in the
	// subtree (for an IPv4 client: A, MX and exists lookups).
	Cost        int    `json:"cost"`
	Lookups     int    `json:"lookups"`
	VoidLookups int    `json:"void_lookups"`
	Error       string `json:"error,omitempty"`
	// Terms holds every DNS-querying term of this record and what it
	// found.
	Terms    []TermCost `json:"terms,omitempty"`
	Children []*Node    `json:"children,omitempty"`
	// Findings are this record's own problems (also in AuditResult).
	Findings []report.Finding `json:"findings,omitempty"`

	void int // void lookups of this record's own terms
}

// TermCost describes one DNS-querying term.
type TermCost struct {
	Term string `json:"term"`
	Cost int    `json:"cost"`
	// Void is set when the term's lookup answers nothing (NXDOMAIN or
	// no data): a void lookup.
	Void bool   `json:"void,omitempty"`
	Note string `json:"note,omitempty"`
}

// AuditResult is the outcome of Audit.
type AuditResult struct {
	Domain      string `json:"domain"`
	Record      string `json:"record"`
	Lookups     int    `json:"lookups"`
	VoidLookups int    `json:"void_lookups"`
	Tree        *Node  `json:"tree"`
	// Findings are the record problems, with stable spf.* codes.
	Findings []report.Finding `json:"-"`
	// Incomplete is set when a lookup failed (timeout, SERVFAIL): the
	// tree is partial.
	Incomplete bool `json:"-"`
}

// Auditor walks a domain's SPF tree.
type Auditor struct {
	Resolver   dnsclient.Resolver
	MaxLookups int // 0 → 10
	MaxVoid    int // 0 → 2
	// Concurrency bounds the DNS queries in flight (0 → 16; 1 walks the
	// tree one query at a time).
	Concurrency int
}

type walker struct {
	a     *Auditor
	ctx   context.Context
	sem   chan struct{}
	mu    sync.Mutex
	nodes int
	dnsEr bool
}

// Audit fetches domain's SPF record and every record it includes or
// redirects to, concurrently where evaluation order does not matter, and
// reports the lookup cost of each node and the record problems found.
// It returns an error only when the root record could not be fetched
// because DNS failed (a *dnsclient.QueryError inside).
func (a *Auditor) Audit(ctx context.Context, domain string) (*AuditResult, error) {
	domain = strings.TrimSuffix(domain, ".")
	par := a.Concurrency
	if par <= 0 {
		par = auditParallel
	}
	w := &walker{a: a, ctx: ctx, sem: make(chan struct{}, par)}
	root := &Node{Domain: domain, Via: "root"}

	// The deprecated SPF RR type (99) is looked up alongside (RFC 7208 §3.1).
	var spfRR []string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		resp, err := w.exchange(domain, dns.TypeSPF)
		if err != nil || resp == nil {
			return
		}
		for _, rr := range resp.Records() {
			spfRR = append(spfRR, strings.Join(rr.(*dns.SPF).Txt, ""))
		}
	}()

	rec, strs, size, err := w.fetch(domain)
	wg.Wait()
	res := &AuditResult{Domain: domain, Tree: root}
	switch {
	case err == nil:
	case errors.Is(err, ErrDNS):
		return res, err
	case errors.Is(err, ErrNoRecord):
		var nre *NoRecordError
		if errors.As(err, &nre) && nre.Outcome == dnsclient.OutcomeNXDomain {
			root.Error = "domain does not exist"
			res.Findings = append(res.Findings, finding("spf.nxdomain", report.SeverityError, "%s does not exist (NXDOMAIN): receivers find no SPF policy", domain))
		} else {
			root.Error = "no SPF record"
			res.Findings = append(res.Findings, finding("spf.none", report.SeverityError, "%s publishes no SPF record (no TXT record starting with \"v=spf1\"): receivers get result none", domain))
		}
		if len(spfRR) > 0 {
			res.Findings = append(res.Findings, finding("spf.rr-type-spf", report.SeverityWarning, "%s publishes SPF only as the deprecated SPF RR type (99), which RFC 7208 §3.1 removed: publish it as TXT", domain))
		}
		return res, nil
	default:
		root.Error = shortError(err)
		root.Strings = flatten(strs)
		if len(strs) == 1 {
			root.Record = root.Strings[0]
			res.Record = root.Record
		}
		res.Findings = append(res.Findings, recordErrorFinding(domain, err, strs))
		if len(strs) == 1 {
			res.Findings = append(res.Findings, stringFindings(domain, strs[0])...)
		}
		return res, nil
	}
	root.Record, root.Strings = rec.Raw, strs[0]
	res.Record = rec.Raw
	if len(spfRR) > 0 {
		res.Findings = append(res.Findings, finding("spf.rr-type-spf", report.SeverityWarning, "%s also publishes the deprecated SPF RR type (99); RFC 7208 §3.1 removed it and receivers ignore it: delete it so the two cannot drift", domain))
	}
	w.walk(root, rec, size, []string{strings.ToLower(domain)}, true)
	res.Lookups, res.VoidLookups = root.Lookups, root.VoidLookups
	res.Incomplete = w.dnsEr

	var collect func(n *Node)
	collect = func(n *Node) {
		res.Findings = append(res.Findings, n.Findings...)
		for _, c := range n.Children {
			collect(c)
		}
	}
	collect(root)

	maxL, maxV := a.MaxLookups, a.MaxVoid
	if maxL <= 0 {
		maxL = DefaultMaxLookups
	}
	if maxV <= 0 {
		maxV = DefaultMaxVoid
	}
	switch {
	case res.Lookups > maxL:
		res.Findings = append(res.Findings, finding("spf.lookup-limit", report.SeverityError, "the tree has %d DNS-querying terms, over the limit of %d (RFC 7208 §4.6.4): receivers return permerror for any IP that does not match early", res.Lookups, maxL))
	case res.Lookups >= maxL-1:
		res.Findings = append(res.Findings, finding("spf.lookups-near-limit", report.SeverityWarning, "the tree has %d of the %d DNS-querying terms allowed (RFC 7208 §4.6.4): one more include can break it", res.Lookups, maxL))
	}
	if res.VoidLookups > maxV {
		res.Findings = append(res.Findings, finding("spf.void-limit", report.SeverityError, "the tree makes %d void lookups, over the limit of %d (RFC 7208 §4.6.4): receivers return permerror", res.VoidLookups, maxV))
	}
	return res, nil
}

// AuditInto is Audit that also adds what it found to rep, as `check spf`
// and `check all` report it: the record findings and, when the root
// record could not be fetched, an "spf.dns-error" warning. A failed
// lookup or a partial tree sets rep.Incomplete. The dns-error warning
// names the server that failed (DNSCause).
func (a *Auditor) AuditInto(ctx context.Context, domain string, rep *report.Report) (*AuditResult, error) {
	audit, err := a.Audit(ctx, domain)
	if err != nil {
		rep.Incomplete = true
		rep.Warn("spf.dns-error", "%s: %v", domain, DNSCause(err))
	}
	if audit != nil {
		rep.Findings = append(rep.Findings, audit.Findings...)
		if audit.Incomplete {
			rep.Incomplete = true
		}
	}
	return audit, err
}

// shortError names a record problem in a few words for the tree; the
// finding has the details.
func shortError(err error) string {
	var se *SyntaxError
	switch {
	case errors.Is(err, ErrMultipleRecords):
		return "several SPF records"
	case errors.As(err, &se):
		return "syntax error"
	}
	return "unusable record"
}

// DNSCause returns the *dnsclient.QueryError inside err (it names the
// query and the server that failed), or err itself.
func DNSCause(err error) error {
	var qe *dnsclient.QueryError
	if errors.As(err, &qe) {
		return qe
	}
	return err
}

func flatten(strs [][]string) []string {
	var out []string
	for _, s := range strs {
		out = append(out, strings.Join(s, ""))
	}
	return out
}

func finding(code string, sev report.Severity, format string, args ...any) report.Finding {
	return report.Finding{Code: code, Severity: sev, Message: fmt.Sprintf(format, args...)}
}

func recordErrorFinding(domain string, err error, strs [][]string) report.Finding {
	var se *SyntaxError
	switch {
	case errors.Is(err, ErrMultipleRecords):
		return finding("spf.multiple-records", report.SeverityError, "%s publishes %d SPF records; exactly one is allowed (RFC 7208 §4.5): receivers return permerror", domain, len(strs))
	case errors.As(err, &se):
		msg := se.Msg
		if se.Term != "" {
			msg = fmt.Sprintf("term %q at offset %d: %s", se.Term, se.Pos, se.Msg)
		}
		return finding("spf.syntax", report.SeverityError, "%s: syntax error in %s (RFC 7208 §12): receivers return permerror", domain, msg)
	}
	return finding("spf.syntax", report.SeverityError, "%s: %v", domain, err)
}

func (w *walker) exchange(name string, qtype uint16) (*dnsclient.Response, error) {
	select {
	case w.sem <- struct{}{}:
	case <-w.ctx.Done():
		return nil, w.ctx.Err()
	}
	defer func() { <-w.sem }()
	return w.a.Resolver.Exchange(w.ctx, name, qtype)
}

// fetch returns the SPF record of domain with its strings and the
// size RFC 7208 §3.4 limits (name plus all TXT text).
func (w *walker) fetch(domain string) (*Record, [][]string, int, error) {
	select {
	case w.sem <- struct{}{}:
	case <-w.ctx.Done():
		return nil, nil, 0, w.ctx.Err()
	}
	defer func() { <-w.sem }()
	rec, strs, resp, err := lookupRecord(w.ctx, w.a.Resolver, domain)
	return rec, strs, answerSize(domain, resp), err
}

func (w *walker) markDNSError() {
	w.mu.Lock()
	w.dnsEr = true
	w.mu.Unlock()
}

// walk fills n from its parsed record: the record checks, then every
// DNS-querying term and child record, concurrently. top is set for the
// root and redirect targets, whose record decides the final result.
func (w *walker) walk(n *Node, rec *Record, size int, path []string, top bool) {
	n.Findings = append(n.Findings, recordFindings(n.Domain, rec, n.Strings, top)...)
	if size > 450 {
		n.Findings = append(n.Findings, finding("spf.record-too-long", report.SeverityWarning, "%s: the TXT answer is %d octets (name plus every TXT record there); RFC 7208 §3.4 asks for under 450 so it fits a 512-octet UDP response; receivers behind TCP-hostile firewalls may ignore it", n.Domain, size))
	}
	hasAll := false
	for _, m := range rec.Mechanisms {
		if m.Kind == "all" {
			hasAll = true
		}
	}

	type job struct {
		term  int // index in n.Terms, or -1
		mech  Mechanism
		child *Node // for include/redirect
	}
	var jobs []job
	var wg sync.WaitGroup
	for _, m := range rec.Mechanisms {
		if !m.CausesLookup() {
			continue
		}
		n.Cost++
		tc := TermCost{Term: m.Term, Cost: 1}
		target := m.Domain
		if target == "" {
			target = n.Domain
		}
		if strings.Contains(target, "%") {
			tc.Note = "depends on the message (macros): not resolved"
			n.Findings = append(n.Findings, finding("spf.macro", report.SeverityInfo, "%s: %q uses macros; its lookups depend on each message and are not followed here", n.Domain, m.Term))
			n.Terms = append(n.Terms, tc)
			continue
		}
		target = strings.TrimSuffix(target, ".")
		if m.Kind == "include" {
			child := &Node{Domain: target, Via: "include", Term: m.Term}
			n.Children = append(n.Children, child)
			n.Terms = append(n.Terms, tc)
			jobs = append(jobs, job{term: -1, child: child})
			continue
		}
		if m.Kind == "ptr" {
			tc.Note = "deprecated; PTR and address lookups per message"
		}
		n.Terms = append(n.Terms, tc)
		jobs = append(jobs, job{term: len(n.Terms) - 1, mech: m})
	}
	if rec.Redirect != "" && !hasAll {
		n.Cost++
		tc := TermCost{Term: "redirect=" + rec.Redirect, Cost: 1}
		if strings.Contains(rec.Redirect, "%") {
			tc.Note = "depends on the message (macros): not resolved"
			n.Findings = append(n.Findings, finding("spf.macro", report.SeverityInfo, "%s: redirect=%s uses macros and is not followed here", n.Domain, rec.Redirect))
			n.Terms = append(n.Terms, tc)
		} else {
			child := &Node{Domain: strings.TrimSuffix(rec.Redirect, "."), Via: "redirect", Term: tc.Term}
			n.Children = append(n.Children, child)
			n.Terms = append(n.Terms, tc)
			jobs = append(jobs, job{term: -1, child: child})
		}
	}

	// exp= is looked up only after a fail and costs nothing (RFC 7208
	// §6.2), but a broken one silently loses the explanation.
	if rec.Exp != "" && top && !strings.Contains(rec.Exp, "%") {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.checkExp(n, strings.TrimSuffix(rec.Exp, "."))
		}()
	}
	for _, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if j.child != nil {
				w.child(n, j.child, path, top)
				return
			}
			w.term(n, &n.Terms[j.term], j.mech)
		}()
	}
	wg.Wait()

	n.Lookups = n.Cost
	n.VoidLookups = n.void
	for _, c := range n.Children {
		n.Lookups += c.Lookups
		n.VoidLookups += c.VoidLookups
	}
}

// term resolves one a/mx/exists/ptr term to find void lookups and the
// MX limit. Each term goroutine writes only its own TermCost; node
// findings and the void count are updated under w.mu.
func (w *walker) term(n *Node, tc *TermCost, m Mechanism) {
	target := m.Domain
	if target == "" {
		target = n.Domain
	}
	target = strings.TrimSuffix(target, ".")
	add := func(f report.Finding) {
		w.mu.Lock()
		n.Findings = append(n.Findings, f)
		w.mu.Unlock()
	}
	voidTerm := func(what string) {
		tc.Void = true
		w.mu.Lock()
		n.void++
		w.mu.Unlock()
		add(finding("spf.void-lookup", report.SeverityWarning, "%s: %q %s: a void lookup (RFC 7208 §4.6.4 allows 2 before permerror)", n.Domain, m.Term, what))
	}
	dnsErr := func(err error) {
		w.markDNSError()
		tc.Note = "lookup failed: " + err.Error()
		add(finding("spf.dns-error", report.SeverityWarning, "%s: %q: %v (receivers get temperror when they reach it)", n.Domain, m.Term, err))
	}
	switch m.Kind {
	case "a", "exists": // both ask for A records (RFC 7208 §5.3, §5.7)
		resp, err := w.exchange(target, dns.TypeA)
		if err != nil {
			dnsErr(err)
			return
		}
		if resp.Outcome.Void() {
			voidTerm(fmt.Sprintf("finds no A record at %s (%s)", target, resp.Outcome))
			return
		}
		if m.Kind == "a" {
			tc.Note = fmt.Sprintf("%d address(es)", len(resp.Records()))
		}
	case "mx":
		resp, err := w.exchange(target, dns.TypeMX)
		if err != nil {
			dnsErr(err)
			return
		}
		if resp.Outcome.Void() {
			voidTerm(fmt.Sprintf("finds no MX record at %s (%s)", target, resp.Outcome))
			return
		}
		mxs := resp.Records()
		tc.Note = fmt.Sprintf("%d MX name(s)", len(mxs))
		if len(mxs) > MaxMXNames {
			add(finding("spf.mx-limit", report.SeverityError, "%s: %q: %s has %d MX records, over the limit of %d (RFC 7208 §4.6.4): receivers return permerror", n.Domain, m.Term, target, len(mxs), MaxMXNames))
			return
		}
		var hwg sync.WaitGroup
		voids := make([]string, len(mxs))
		for i, rr := range mxs {
			host := strings.TrimSuffix(rr.(*dns.MX).Mx, ".")
			if host == "" {
				continue // null MX (RFC 7505)
			}
			hwg.Add(1)
			go func() {
				defer hwg.Done()
				ar, err := w.exchange(host, dns.TypeA)
				if err != nil {
					dnsErr(err)
					return
				}
				if ar.Outcome.Void() {
					voids[i] = host
				}
			}()
		}
		hwg.Wait()
		// Void lookups count per term (RFC 7208 §4.6.4): a host without
		// an address is worth knowing but is not a void term.
		for _, h := range voids {
			if h != "" {
				add(finding("spf.mx-no-address", report.SeverityInfo, "%s: %q reaches MX host %s, which has no A record: it cannot match IPv4 clients", n.Domain, m.Term, h))
			}
		}
	case "ptr":
		add(finding("spf.ptr", report.SeverityWarning, "%s: %q: the ptr mechanism is deprecated (RFC 7208 §5.5: it is slow and unreliable, and large receivers skip it); list the addresses with ip4/ip6 or a", n.Domain, m.Term))
	}
}

// checkExp checks that the exp= target holds exactly one TXT record.
func (w *walker) checkExp(n *Node, target string) {
	resp, err := w.exchange(target, dns.TypeTXT)
	if err != nil {
		if w.ctx.Err() == nil && !errors.Is(err, dnsclient.ErrInvalid) {
			w.mu.Lock()
			n.Findings = append(n.Findings, finding("spf.exp-invalid", report.SeverityWarning, "%s: exp=%s: %v; receivers give no explanation", n.Domain, target, DNSCause(err)))
			w.mu.Unlock()
		}
		return
	}
	if k := len(resp.Records()); k != 1 {
		w.mu.Lock()
		n.Findings = append(n.Findings, finding("spf.exp-invalid", report.SeverityWarning, "%s: exp=%s finds %d TXT records (%s), not exactly one: receivers give no explanation (RFC 7208 §6.2)", n.Domain, target, k, resp.Outcome))
		w.mu.Unlock()
	}
}

// child fetches and walks an included or redirected record.
func (w *walker) child(parent, c *Node, path []string, top bool) {
	add := func(f report.Finding) { c.Findings = append(c.Findings, f) }
	lower := strings.ToLower(c.Domain)
	for _, p := range path {
		if p == lower {
			c.Error = "loop"
			add(finding("spf.include-loop", report.SeverityError, "%s: %q leads back to %s, a loop: receivers run out of lookups and return permerror", parent.Domain, c.Term, c.Domain))
			return
		}
	}
	if len(path) >= maxAuditDepth {
		c.Error = "too deep"
		add(finding("spf.include-depth", report.SeverityError, "%s: %q is nested %d levels deep; not followed further", parent.Domain, c.Term, len(path)))
		return
	}
	w.mu.Lock()
	w.nodes++
	tooMany := w.nodes > maxAuditNodes
	w.mu.Unlock()
	if tooMany {
		c.Error = "not followed: tree too large"
		add(finding("spf.tree-too-large", report.SeverityError, "%s: %q not followed: the tree has more than %d records", parent.Domain, c.Term, maxAuditNodes))
		return
	}
	if !ValidDomain(c.Domain) {
		c.Error = "invalid domain"
		add(finding("spf.include-invalid", report.SeverityError, "%s: %q names an invalid domain: receivers return permerror", parent.Domain, c.Term))
		return
	}
	rec, strs, size, err := w.fetch(c.Domain)
	switch {
	case err == nil:
	case errors.Is(err, ErrDNS):
		w.markDNSError()
		c.Error = "DNS error"
		add(finding("spf.dns-error", report.SeverityWarning, "%s: %q: %v (receivers get temperror)", parent.Domain, c.Term, DNSCause(err)))
		return
	case errors.Is(err, ErrNoRecord):
		c.Error = "no SPF record"
		if nre := (*NoRecordError)(nil); errors.As(err, &nre) && nre.Outcome.Void() {
			c.VoidLookups = 1 // NXDOMAIN or no TXT at all; other TXT records are not void
		}
		code, what := "spf.include-none", "include"
		if c.Via == "redirect" {
			code, what = "spf.redirect-none", "redirect"
		}
		add(finding(code, report.SeverityError, "%s: %q: %v; an %s of it is a permerror (RFC 7208 §5.2, §6.1)", parent.Domain, c.Term, strings.TrimPrefix(err.Error(), "spf: "), what))
		return
	default:
		c.Error = shortError(err)
		c.Strings = flatten(strs)
		if len(strs) == 1 {
			c.Record = c.Strings[0]
		}
		add(recordErrorFinding(c.Domain, err, strs))
		if len(strs) == 1 {
			c.Findings = append(c.Findings, stringFindings(c.Domain, strs[0])...)
		}
		return
	}
	c.Record, c.Strings = rec.Raw, strs[0]
	w.walk(c, rec, size, append(append([]string(nil), path...), lower), top && c.Via == "redirect")
}

// recordFindings checks one record's own text (RFC 7208 §3.3, §3.4,
// §4.6.2, §5, §6).
func recordFindings(domain string, rec *Record, strs []string, top bool) []report.Finding {
	var out []report.Finding
	add := func(code string, sev report.Severity, format string, args ...any) {
		out = append(out, finding(code, sev, domain+": "+format, args...))
	}
	out = append(out, stringFindings(domain, strs)...)
	hasAll, allIdx := false, -1
	for i, m := range rec.Mechanisms {
		if m.Kind == "all" && !hasAll {
			hasAll, allIdx = true, i
			switch m.Qualifier {
			case '+':
				add("spf.all-pass", report.SeverityError, "%q lets every host on the internet pass SPF for this domain", m.Term)
			case '?':
				if top {
					add("spf.all-neutral", report.SeverityWarning, "%q: unlisted hosts get neutral, which receivers treat like no SPF; use ~all or -all", m.Term)
				}
			}
		}
	}
	if hasAll && allIdx < len(rec.Mechanisms)-1 {
		add("spf.after-all", report.SeverityWarning, "%d term(s) after %q are never evaluated (RFC 7208 §4.6.2)", len(rec.Mechanisms)-1-allIdx, rec.Mechanisms[allIdx].Term)
	}
	if hasAll && rec.Redirect != "" {
		add("spf.redirect-ignored", report.SeverityWarning, "redirect=%s is ignored because the record has an \"all\" mechanism (RFC 7208 §6.1)", rec.Redirect)
	}
	if top && !hasAll && rec.Redirect == "" {
		add("spf.no-all", report.SeverityWarning, "the record ends without \"all\" or redirect=: unlisted hosts get neutral (RFC 7208 §4.7); end it with ~all or -all")
	}
	for _, m := range rec.Modifiers {
		if m.Name != "redirect" && m.Name != "exp" {
			add("spf.unknown-modifier", report.SeverityInfo, "unknown modifier %q is ignored (RFC 7208 §6)", m.Term)
		}
	}
	// Duplicate and overlapping ip4/ip6 networks, and duplicate includes.
	seen := map[string]string{}
	for i, m := range rec.Mechanisms {
		if m.Kind == "include" {
			k := strings.ToLower(strings.TrimSuffix(m.Domain, "."))
			if prev, ok := seen["inc:"+k]; ok {
				add("spf.duplicate-include", report.SeverityWarning, "%q repeats %q and costs its lookups twice", m.Term, prev)
			} else {
				seen["inc:"+k] = m.Term
			}
		}
		if m.Net == nil {
			continue
		}
		for _, o := range rec.Mechanisms[:i] {
			if o.Net == nil || len(o.Net.IP) != len(m.Net.IP) {
				continue
			}
			switch {
			case o.Net.IP.Equal(m.Net.IP) && bytes.Equal(o.Net.Mask, m.Net.Mask):
				add("spf.ip-duplicate", report.SeverityWarning, "%q repeats %q", m.Term, o.Term)
			case contains(o.Net, m.Net):
				add("spf.ip-overlap", report.SeverityWarning, "%q is already covered by %q", m.Term, o.Term)
			case contains(m.Net, o.Net):
				add("spf.ip-overlap", report.SeverityWarning, "%q covers the earlier %q", m.Term, o.Term)
			default:
				continue
			}
			break
		}
	}
	return out
}

// stringFindings checks how a record is split into TXT character-strings
// (RFC 7208 §3.3).
func stringFindings(domain string, strs []string) []report.Finding {
	var out []report.Finding
	add := func(code string, sev report.Severity, format string, args ...any) {
		out = append(out, finding(code, sev, domain+": "+format, args...))
	}
	for i, s := range strs {
		if len(s) > 255 {
			add("spf.string-too-long", report.SeverityError, "TXT string %d is %d bytes; a DNS character-string holds at most 255 (RFC 7208 §3.3): split it into several strings", i+1, len(s))
		}
	}
	total := 0
	for _, s := range strs {
		total += len(s)
	}
	if need := (total + 254) / 255; len(strs) > need && len(strs) > 1 {
		add("spf.string-split", report.SeverityInfo, "the record is split into %d TXT strings where %d would hold it; every split is a chance to lose a space (RFC 7208 §3.3)", len(strs), need)
	}
	if len(strs) > 1 {
		for i := 1; i < len(strs); i++ {
			prev, cur := strs[i-1], strs[i]
			if prev != "" && cur != "" && prev[len(prev)-1] != ' ' && cur[0] != ' ' {
				add("spf.string-join", report.SeverityInfo, "TXT strings %d and %d join without a space (%q + %q): receivers concatenate them as-is (RFC 7208 §3.3), so a term continues across the split", i, i+1, tail(prev), head(cur))
			}
		}
	}
	return out
}

// contains reports whether network a contains all of b.
func contains(a, b *net.IPNet) bool {
	ao, _ := a.Mask.Size()
	bo, _ := b.Mask.Size()
	return ao <= bo && a.Contains(b.IP)
}

func tail(s string) string {
	if len(s) > 12 {
		return "…" + s[len(s)-12:]
	}
	return s
}

func head(s string) string {
	if len(s) > 12 {
		return s[:12] + "…"
	}
	return s
}

// OutcomeFinding turns check_host()'s outcome for ip into a finding
// with code "spf.eval-<result>": pass is info, fail and permerror are
// errors, softfail, neutral and none warnings (receivers do not trust
// the IP), temperror a warning with incomplete set (the check could not
// complete).
func OutcomeFinding(ip net.IP, domain string, o Outcome) (f report.Finding, incomplete bool) {
	what := fmt.Sprintf("check_host(%s, %s) = %s", ip, domain, o.Result)
	switch {
	case o.Matched == "":
	case o.Result == PermError || o.Result == TempError:
		what += fmt.Sprintf(" (stopped at %q in %s)", o.Matched, o.Domain)
	default:
		what += fmt.Sprintf(" (matched %q in %s)", o.Matched, o.Domain)
	}
	if o.Err != nil {
		what += ": " + o.Err.Error()
	}
	code := "spf.eval-" + string(o.Result)
	switch o.Result {
	case Pass:
		return finding(code, report.SeverityInfo, "%s", what), false
	case Fail, PermError:
		return finding(code, report.SeverityError, "%s", what), false
	case TempError:
		return finding(code, report.SeverityWarning, "%s", what), true
	}
	return finding(code, report.SeverityWarning, "%s", what), false
}
