package dmarc

import (
	"context"
	"testing"
	"time"

	"github.com/relayctl/relayctl/pkg/dnsclient"
	"github.com/relayctl/relayctl/pkg/dnstest"
	"github.com/relayctl/relayctl/pkg/report"
)

func resolver(t *testing.T, zone string) (*dnstest.Server, dnsclient.Resolver) {
	t.Helper()
	srv := dnstest.Start(t, zone)
	c, err := dnsclient.New([]string{srv.Addr()}, dnsclient.WithTimeout(time.Second), dnsclient.WithRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	return srv, c
}

const discoverZone = `
$ORIGIN example.test.
_dmarc            TXT "v=DMARC1; p=reject; sp=quarantine; np=reject; rua=mailto:dmarc@example.test"
_dmarc.own        TXT "v=DMARC1; p=none"
_dmarc.twice      TXT "v=DMARC1; p=none"
_dmarc.twice      TXT "v=DMARC1; p=reject"
_dmarc.broken     TXT "v=dmarc1; p=reject"
_dmarc.spf        TXT "v=spf1 -all"
own               A   192.0.2.1
$ORIGIN psd.test.
_dmarc            TXT "v=DMARC1; p=reject; psd=y"
_dmarc.shop       TXT "v=DMARC1; p=quarantine"
_dmarc.deep.a.b.c.d.e.f.g TXT "v=DMARC1; p=none; psd=n"
$ORIGIN test.
_dmarc.nodmarc    TXT "v=spf1 -all"
`

func TestDiscover(t *testing.T) {
	_, r := resolver(t, discoverZone)
	ctx := context.Background()
	tests := []struct {
		domain        string
		rec7489       string // where RFC 7489 finds the record ("" none)
		rec9989       string
		org, bisOrg   string
		multi, broken bool
	}{
		{"example.test", "example.test", "example.test", "example.test", "example.test", false, false},
		{"own.example.test", "own.example.test", "own.example.test", "example.test", "example.test", false, false},
		{"sub.example.test", "example.test", "example.test", "example.test", "example.test", false, false},
		{"a.b.sub.example.test", "example.test", "example.test", "example.test", "example.test", false, false},
		{"twice.example.test", "", "", "example.test", "example.test", true, false},
		{"broken.example.test", "example.test", "example.test", "example.test", "example.test", false, true},
		{"spf.example.test", "example.test", "example.test", "example.test", "example.test", false, false},
		// psd.test is not on the public suffix list: RFC 7489 takes psd.test as
		// the organizational domain, RFC 9989 stops one label below the psd=y.
		{"shop.psd.test", "shop.psd.test", "shop.psd.test", "psd.test", "shop.psd.test", false, false},
		{"mail.shop.psd.test", "psd.test", "shop.psd.test", "psd.test", "shop.psd.test", false, false},
		{"other.psd.test", "psd.test", "psd.test", "psd.test", "other.psd.test", false, false},
		{"deep.a.b.c.d.e.f.g.psd.test", "deep.a.b.c.d.e.f.g.psd.test", "deep.a.b.c.d.e.f.g.psd.test", "psd.test", "deep.a.b.c.d.e.f.g.psd.test", false, false},
		// 11 labels: the walk jumps to the 7 rightmost and never sees _dmarc.deep….
		{"x.deep.a.b.c.d.e.f.g.psd.test", "psd.test", "psd.test", "psd.test", "g.psd.test", false, false},
		{"nodmarc.test", "", "", "nodmarc.test", "nodmarc.test", false, false},
	}
	for _, tc := range tests {
		d := NewDiscoverer(r)
		disc, err := d.Discover(ctx, tc.domain)
		if err != nil {
			t.Errorf("%s: %v", tc.domain, err)
			continue
		}
		where := func(f *Found) string {
			if f == nil {
				return ""
			}
			return f.Domain
		}
		if where(disc.Policy) != tc.rec7489 || where(disc.BisPolicy) != tc.rec9989 || disc.OrgDomain != tc.org ||
			disc.BisOrgDomain != tc.bisOrg || (len(disc.Multiple) > 0) != tc.multi || (len(disc.Broken) > 0) != tc.broken {
			t.Errorf("%s: 7489 record at %q org %q; 9989 record at %q org %q; multiple %v broken %v",
				tc.domain, where(disc.Policy), disc.OrgDomain, where(disc.BisPolicy), disc.BisOrgDomain, disc.Multiple, disc.Broken)
		}
		if len(d.Queried) > 9 {
			t.Errorf("%s: %d queries: %v", tc.domain, len(d.Queried), d.Queried)
		}
	}
}

func TestDisposition(t *testing.T) {
	_, r := resolver(t, discoverZone+`
$ORIGIN pct.test.
_dmarc TXT "v=DMARC1; p=reject; pct=25"
$ORIGIN testing.test.
_dmarc TXT "v=DMARC1; p=quarantine; t=y"
`)
	ctx := context.Background()
	tests := []struct {
		domain      string
		nonexistent bool
		want7489    string
		want9989    string
	}{
		{"example.test", false, "reject", "reject"},
		{"sub.example.test", false, "quarantine", "quarantine"},
		{"sub.example.test", true, "quarantine", "reject"}, // np applies only under RFC 9989
		{"own.example.test", false, "none", "none"},
		{"pct.test", false, "reject for 25%, quarantine for the rest (pct=25)", "reject"},
		{"testing.test", false, "quarantine", "none"},
	}
	for _, tc := range tests {
		disc, err := NewDiscoverer(r).Discover(ctx, tc.domain)
		if err != nil {
			t.Fatal(err)
		}
		d7, _ := disc.Disposition7489()
		d9, _ := disc.Disposition9989(tc.nonexistent)
		if d7.String() != tc.want7489 || d9.String() != tc.want9989 {
			t.Errorf("%s (nonexistent %v): 7489 %q, 9989 %q; want %q, %q", tc.domain, tc.nonexistent, d7, d9, tc.want7489, tc.want9989)
		}
	}
}

func TestNonexistent(t *testing.T) {
	_, r := resolver(t, discoverZone)
	ctx := context.Background()
	if ne, err := Nonexistent(ctx, r, "ghost.example.test"); err != nil || !ne {
		t.Errorf("ghost: %v %v", ne, err)
	}
	if ne, err := Nonexistent(ctx, r, "own.example.test"); err != nil || ne {
		t.Errorf("own: %v %v", ne, err)
	}
}

func TestDiscoverDNSFailure(t *testing.T) {
	srv, r := resolver(t, discoverZone)
	srv.Set("_dmarc.sub.example.test", 0, dnstest.ServFail)
	if _, err := NewDiscoverer(r).Discover(context.Background(), "sub.example.test"); err == nil {
		t.Fatal("SERVFAIL: no error")
	}
	rep := report.New("check dmarc", "sub.example.test")
	CheckDomain(context.Background(), r, "sub.example.test", rep)
	if rep.Finish() != report.StatusError || !rep.Has(CodeDNS) {
		t.Errorf("status %s findings %+v", rep.Status, rep.Findings)
	}
}

func TestReportAuthorized(t *testing.T) {
	_, r := resolver(t, `
example.test._report._dmarc.reports.test. TXT "v=DMARC1"
*._report._dmarc.wild.test.               TXT "v=DMARC1;"
other.test._report._dmarc.reports.test.   TXT "v=spf1"
`)
	ctx := context.Background()
	for _, tc := range []struct {
		policy, dest string
		want         bool
	}{
		{"example.test", "reports.test", true},
		{"other.test", "reports.test", false},
		{"third.test", "reports.test", false},
		{"example.test", "wild.test", true},
	} {
		got, err := ReportAuthorized(ctx, r, tc.policy, tc.dest)
		if err != nil || got != tc.want {
			t.Errorf("%s → %s: %v %v", tc.policy, tc.dest, got, err)
		}
	}
	if NeedsAuthorization("example.com", "mail.example.com") || !NeedsAuthorization("example.com", "example.net") {
		t.Error("NeedsAuthorization")
	}
}
