package spf_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/relayctl/relayctl/pkg/dnsclient"
	"github.com/relayctl/relayctl/pkg/dnstest"
	"github.com/relayctl/relayctl/pkg/report"
	"github.com/relayctl/relayctl/pkg/spf"
)

func auditZone(t *testing.T, zone, domain string) *spf.AuditResult {
	t.Helper()
	srv := dnstest.Start(t, zone)
	c, err := dnsclient.New([]string{srv.Addr()}, dnsclient.WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	res, err := (&spf.Auditor{Resolver: c}).Audit(context.Background(), domain)
	if err != nil {
		t.Fatalf("audit: %v", err)
	}
	return res
}

func codes(fs []report.Finding) string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Code)
	}
	return strings.Join(out, " ")
}

func TestAuditFindings(t *testing.T) {
	cases := []struct {
		name, zone string
		want       []string // finding codes that must be present
		lookups    int
	}{
		{"clean", `example.com. TXT "v=spf1 ip4:192.0.2.0/24 -all"`, nil, 0},
		{"all-pass", `example.com. TXT "v=spf1 +all"`, []string{"spf.all-pass"}, 0},
		{"all-neutral", `example.com. TXT "v=spf1 ip4:192.0.2.1 ?all"`, []string{"spf.all-neutral"}, 0},
		{"no-all", `example.com. TXT "v=spf1 ip4:192.0.2.1"`, []string{"spf.no-all"}, 0},
		{"multiple", "example.com. TXT \"v=spf1 -all\"\nexample.com. TXT \"v=spf1 ~all\"", []string{"spf.multiple-records"}, 0},
		{"syntax", `example.com. TXT "v=spf1 ip4:192.0.2.1/40 -all"`, []string{"spf.syntax"}, 0},
		{"rr-type-spf", "example.com. TXT \"v=spf1 -all\"\nexample.com. SPF \"v=spf1 -all\"", []string{"spf.rr-type-spf"}, 0},
		{"ptr", `example.com. TXT "v=spf1 ptr -all"`, []string{"spf.ptr"}, 1},
		{"after-all", `example.com. TXT "v=spf1 -all ip4:192.0.2.1"`, []string{"spf.after-all"}, 0},
		{"redirect-ignored", "example.com. TXT \"v=spf1 -all redirect=o.example.com\"\no.example.com. TXT \"v=spf1 -all\"", []string{"spf.redirect-ignored"}, 0},
		{"ip-duplicate", `example.com. TXT "v=spf1 ip4:192.0.2.1 ip4:192.0.2.1/32 ip6:2001:db8::/32 ip6:2001:db8:1::/48 -all"`, []string{"spf.ip-duplicate", "spf.ip-overlap"}, 0},
		{"include-none", "example.com. TXT \"v=spf1 include:gone.example.net -all\"", []string{"spf.include-none"}, 1},
		{"redirect-none", "example.com. TXT \"v=spf1 redirect=empty.example.net\"\nempty.example.net. TXT \"not spf\"", []string{"spf.redirect-none"}, 1},
		{"include-loop", "example.com. TXT \"v=spf1 include:a.example.net -all\"\na.example.net. TXT \"v=spf1 include:example.com -all\"", []string{"spf.include-loop"}, 2},
		{"duplicate-include", "example.com. TXT \"v=spf1 include:a.example.net include:A.example.net. -all\"\na.example.net. TXT \"v=spf1 -all\"", []string{"spf.duplicate-include"}, 2},
		{"void", `example.com. TXT "v=spf1 a:x.example.com a:y.example.com mx:z.example.com -all"`, []string{"spf.void-lookup", "spf.void-limit"}, 3},
		{"macro", `example.com. TXT "v=spf1 exists:%{i}.bl.example.com -all"`, []string{"spf.macro"}, 1},
		{"exp-invalid", `example.com. TXT "v=spf1 -all exp=why.example.com"`, []string{"spf.exp-invalid"}, 0},
		{"exp-ok", "example.com. TXT \"v=spf1 -all exp=why.example.com\"\nwhy.example.com. TXT \"%{i} is not allowed\"", nil, 0},
		{"unknown-modifier", `example.com. TXT "v=spf1 -all moo=cow"`, []string{"spf.unknown-modifier"}, 0},
		{"string-join", `example.com. TXT "v=spf1 ip4:192.0.2.1" "include:a.example.net -all"`, []string{"spf.string-join", "spf.syntax", "spf.string-split"}, 0},
		{"mx-limit", mxZone(11), []string{"spf.mx-limit"}, 1},
		{"lookup-limit", limitZone(11), []string{"spf.lookup-limit"}, 11},
		{"near-limit", limitZone(9), []string{"spf.lookups-near-limit"}, 9},
		{"record-too-long", `example.com. TXT "v=spf1 ` + strings.Repeat("ip4:192.0.2.1 ", 20) + `" "` + strings.Repeat("ip4:192.0.2.2 ", 20) + `-all"`, []string{"spf.record-too-long"}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := auditZone(t, tc.zone, "example.com")
			got := " " + codes(res.Findings) + " "
			for _, w := range tc.want {
				if !strings.Contains(got, " "+w+" ") {
					t.Errorf("findings [%s] lack %s", strings.TrimSpace(got), w)
				}
			}
			if tc.want == nil && len(res.Findings) != 0 {
				t.Errorf("clean record has findings: %v", res.Findings)
			}
			if res.Lookups != tc.lookups {
				t.Errorf("lookups %d, want %d", res.Lookups, tc.lookups)
			}
		})
	}
}

// mxZone gives example.com an "mx" term whose domain has n MX names.
func mxZone(n int) string {
	z := "example.com. TXT \"v=spf1 mx -all\"\n"
	for i := 0; i < n; i++ {
		z += fmt.Sprintf("example.com. MX %d mx%d.example.com.\nmx%d.example.com. A 192.0.2.%d\n", i, i, i, i+1)
	}
	return z
}

// limitZone gives example.com n DNS-querying terms through a chain of
// includes with a terms.
func limitZone(n int) string {
	z := "example.com. TXT \"v=spf1 include:l1.example.com -all\"\nexample.com. A 192.0.2.1\n"
	left := n - 1
	for i := 1; left > 0; i++ {
		terms := []string{}
		for j := 0; j < 3 && left > 1; j++ {
			terms = append(terms, "a:example.com")
			left--
		}
		if left > 1 {
			terms = append(terms, fmt.Sprintf("include:l%d.example.com", i+1))
			left--
		} else if left == 1 {
			terms = append(terms, "a:example.com")
			left--
		}
		z += fmt.Sprintf("l%d.example.com. TXT \"v=spf1 %s -all\"\n", i, strings.Join(terms, " "))
	}
	return z
}

func TestAuditTreeCost(t *testing.T) {
	res := auditZone(t, benchZone, "root.bench.example")
	if res.Lookups != 10 || res.Tree.Cost != 3 || len(res.Tree.Children) != 3 {
		t.Fatalf("lookups %d root cost %d children %d; want 10, 3, 3", res.Lookups, res.Tree.Cost, len(res.Tree.Children))
	}
	want := map[string][2]int{"a.bench.example": {2, 2}, "b.bench.example": {2, 3}, "c.bench.example": {2, 2}}
	for _, c := range res.Tree.Children {
		if w := want[c.Domain]; c.Cost != w[0] || c.Lookups != w[1] {
			t.Errorf("%s: cost %d total %d, want %v", c.Domain, c.Cost, c.Lookups, w)
		}
	}
	if len(res.Findings) != 1 || res.Findings[0].Code != "spf.lookups-near-limit" {
		t.Errorf("findings %v", res.Findings)
	}
}

// benchZone is a 10-lookup tree three levels deep.
const benchZone = `
root.bench.example. TXT "v=spf1 include:a.bench.example include:b.bench.example include:c.bench.example -all"
a.bench.example.    TXT "v=spf1 include:a1.bench.example include:a2.bench.example -all"
b.bench.example.    TXT "v=spf1 include:b1.bench.example mx -all"
b.bench.example.    MX 10 mx.b.bench.example.
mx.b.bench.example. A 192.0.2.25
c.bench.example.    TXT "v=spf1 a exists:c.bench.example -all"
c.bench.example.    A 192.0.2.30
a1.bench.example.   TXT "v=spf1 ip4:198.51.100.0/24 -all"
a2.bench.example.   TXT "v=spf1 ip6:2001:db8::/32 -all"
b1.bench.example.   TXT "v=spf1 a -all"
b1.bench.example.   A 203.0.113.1
`

// BenchmarkAuditTree walks the 10-lookup, 3-level tree with 20 ms per
// answer, concurrently and one query at a time. Compare ms/op with
// 10 × 20 ms = 200 ms.
func BenchmarkAuditTree(b *testing.B) {
	srv, err := dnstest.New(benchZone)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	srv.SetDelay(20 * time.Millisecond)
	c, err := dnsclient.New([]string{srv.Addr()}, dnsclient.WithTimeout(2*time.Second))
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		par  int
	}{{"concurrent", 0}, {"serial", 1}} {
		b.Run(bc.name, func(b *testing.B) {
			a := &spf.Auditor{Resolver: c, Concurrency: bc.par}
			start := srv.Queries()
			for i := 0; i < b.N; i++ {
				res, err := a.Audit(context.Background(), "root.bench.example")
				if err != nil || res.Lookups != 10 {
					b.Fatalf("audit: %v, lookups %d", err, res.Lookups)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/audit")
			b.ReportMetric(float64(srv.Queries()-start)/float64(b.N), "queries/audit")
		})
	}
}
