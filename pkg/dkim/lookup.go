package dkim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/miekg/dns"

	"github.com/relayctl/relayctl/pkg/dnsclient"
	"github.com/relayctl/relayctl/pkg/report"
)

// CommonSelectors are tried when no selector is given: defaults of common
// MTAs, signing tools and mail providers. Selectors are arbitrary
// (RFC 6376 §3.1), so not finding one proves nothing.
var CommonSelectors = []string{
	"default", "dkim", "mail", "email", "selector1", "selector2", "google",
	"k1", "k2", "k3", "s1", "s2", "s1024", "s2048", "key1", "key2",
	"smtp", "mx", "dk", "sig1", "mandrill", "mailjet", "pm", "zoho",
	"fm1", "fm2", "fm3", "protonmail", "protonmail2", "protonmail3",
}

// SelectorResult is what one selector's lookup found.
type SelectorResult struct {
	Selector string           `json:"selector"`
	Name     string           `json:"name"`
	CNAMEs   []string         `json:"cnames,omitempty"` // delegation chain, in order
	Found    bool             `json:"found"`
	Records  []string         `json:"records,omitempty"` // TXT values, strings joined
	Strings  [][]string       `json:"strings,omitempty"` // each record's character-strings
	Key      *KeyRecord       `json:"key,omitempty"`     // the parsed record (the first, if several)
	Findings []report.Finding `json:"findings"`
}

// ValidSelector checks a selector's syntax: dot-separated DNS labels
// (RFC 6376 §3.1).
func ValidSelector(s string) error {
	if s == "" {
		return fmt.Errorf("empty selector")
	}
	if strings.Contains(strings.ToLower(s), "_domainkey") {
		return fmt.Errorf("selector %q: give only the selector (e.g. s1), not the record name", s)
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("selector %q: labels must be 1–63 characters", s)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			ok := isAlpha(c) || c >= '0' && c <= '9' || c == '-' || c == '_'
			if !ok {
				return fmt.Errorf("selector %q: invalid character %q", s, c)
			}
		}
	}
	return nil
}

// CheckSelector looks up selector._domainkey.domain (following CNAMEs, as
// a resolver does) and audits what it finds. The error is a DNS failure
// (*dnsclient.QueryError): the result is then unknown.
func CheckSelector(ctx context.Context, r dnsclient.Resolver, domain, selector string) (*SelectorResult, error) {
	res := &SelectorResult{Selector: selector, Name: RecordName(selector, domain), Findings: []report.Finding{}}
	add := func(code string, sev report.Severity, format string, args ...any) {
		res.Findings = append(res.Findings, report.Finding{Code: code, Severity: sev, Message: fmt.Sprintf(format, args...)})
	}
	resp, err := r.Exchange(ctx, res.Name, dns.TypeTXT)
	if err != nil {
		return res, fmt.Errorf("dkim: selector %s: %w", selector, err)
	}
	for _, c := range resp.CNAMEs() {
		res.CNAMEs = append(res.CNAMEs, strings.TrimSuffix(c.Target, "."))
	}
	if len(res.CNAMEs) > 0 {
		add(CodeCNAME, report.SeverityInfo, "%s is delegated by CNAME to %s", res.Name, strings.Join(res.CNAMEs, " → "))
	}
	for _, rr := range resp.Records() {
		parts := rr.(*dns.TXT).Txt
		raw := make([]string, len(parts))
		for i, p := range parts {
			raw[i] = dnsclient.UnescapeTXT(p)
		}
		res.Strings = append(res.Strings, raw)
		res.Records = append(res.Records, strings.Join(raw, "")) // §3.6.2.2: joined without spaces
	}
	switch len(res.Records) {
	case 0:
		where := res.Name
		if len(res.CNAMEs) > 0 {
			where = res.CNAMEs[len(res.CNAMEs)-1] + " (CNAME target of " + res.Name + ")"
		}
		what := "no TXT record"
		if resp.Outcome == dnsclient.OutcomeNXDomain {
			what = "the name does not exist"
		}
		add(CodeRecordMissing, report.SeverityError, "no DKIM key at %s: %s", where, what)
		return res, nil
	case 1:
	default: // RFC 6376 §3.6.2.2: several records give undefined results
		add(CodeSeveralRecords, report.SeverityError, "%d TXT records at %s: verifiers reject the key (RFC 6376 §3.6.2.2); publish exactly one", len(res.Records), res.Name)
		if joined := splitRecordsKey(res.Records); joined != "" {
			add(CodeSplitRecords, report.SeverityError, "the records join into one valid key: the value was split into separate TXT records instead of several strings of one record; publish it as one record: %s", joined)
		}
	}
	res.Found = true
	key, fs := AuditKeyRecord(res.Records[0])
	res.Key = key
	res.Findings = append(res.Findings, fs...)
	return res, nil
}

// splitRecordsKey returns the joined value when several TXT records are
// the pieces of one key record (tried in the order received and, for
// two, reversed: DNS does not keep record order), or "".
func splitRecordsKey(records []string) string {
	orders := [][]string{records}
	if len(records) == 2 {
		orders = append(orders, []string{records[1], records[0]})
	}
	for _, o := range orders {
		joined := strings.Join(o, "")
		if k, fs := AuditKeyRecord(joined); k != nil && k.Key != nil && !slices.ContainsFunc(fs, func(f report.Finding) bool { return f.Code == CodeKeyDecode }) {
			return joined
		}
	}
	return ""
}

// HasWildcard reports whether the domain answers TXT queries for a
// selector nobody would use (a wildcard under _domainkey, RFC 4592), in
// which case discovery finds every common selector.
func HasWildcard(ctx context.Context, r dnsclient.Resolver, domain string) (bool, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return false, err
	}
	res, err := CheckSelector(ctx, r, domain, "relayctl-probe-"+hex.EncodeToString(b[:]))
	if err != nil {
		return false, err
	}
	return res.Found, nil
}

// Discover tries each selector (CommonSelectors when nil) and returns the
// results of those with a record, in the order given. A DNS failure on
// any selector is returned after the others were tried.
func Discover(ctx context.Context, r dnsclient.Resolver, domain string, selectors []string) ([]*SelectorResult, error) {
	if selectors == nil {
		selectors = CommonSelectors
	}
	results := make([]*SelectorResult, len(selectors))
	errs := make([]error, len(selectors))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, s := range selectors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i], errs[i] = CheckSelector(ctx, r, domain, s)
		}()
	}
	wg.Wait()
	var found []*SelectorResult
	var firstErr error
	for i, res := range results {
		if errs[i] != nil {
			if firstErr == nil {
				firstErr = errs[i]
			}
			continue
		}
		if res.Found {
			found = append(found, res)
		}
	}
	return found, firstErr
}
