package dmarc

import (
	"context"
	"testing"

	"github.com/relayctl/relayctl/pkg/report"
)

const auditZone = `
$ORIGIN good.test.
@       TXT "v=spf1 ip4:192.0.2.0/24 -all"
_dmarc  TXT "v=DMARC1; p=reject; rua=mailto:dmarc@good.test,mailto:agg@reports.test; ruf=mailto:f@elsewhere.test"
$ORIGIN reports.test.
good.test._report._dmarc TXT "v=DMARC1"
$ORIGIN none.test.
_dmarc  TXT "v=DMARC1; p=none; rua=mailto:d@none.test"
$ORIGIN pct.test.
_dmarc  TXT "v=DMARC1; p=quarantine; pct=10; rua=mailto:d@pct.test"
$ORIGIN norua.test.
_dmarc  TXT "v=DMARC1; p=reject"
$ORIGIN multi.test.
_dmarc  TXT "v=DMARC1; p=reject"
_dmarc  TXT "v=DMARC1; p=none"
$ORIGIN syntax.test.
_dmarc  TXT "v=DMARC1; p=rejectt; adkim=x; pct=200; foo=bar; rua=mailto:d@syntax.test"
$ORIGIN nop.test.
_dmarc  TXT "v=DMARC1; rua=mailto:d@nop.test"
$ORIGIN version.test.
_dmarc  TXT "v=DMARC 1; p=reject"
$ORIGIN strict.test.
_dmarc  TXT "v=DMARC1; p=reject; aspf=s; adkim=s; rua=mailto:d@strict.test"
$ORIGIN strictok.test.
@       TXT "v=spf1 mx -all"
_dmarc  TXT "v=DMARC1; p=reject; aspf=s; rua=mailto:d@strictok.test"
$ORIGIN strictneg.test.
@       TXT "v=spf1 -all"
_dmarc  TXT "v=DMARC1; p=reject; aspf=s; rua=mailto:d@strictneg.test"
$ORIGIN spnone.test.
_dmarc  TXT "v=DMARC1; p=reject; sp=none; rua=mailto:d@spnone.test"
$ORIGIN tmode.test.
_dmarc  TXT "v=DMARC1; p=reject; t=y; ri=3600; rua=mailto:d@tmode.test"
$ORIGIN psd.test.
_dmarc  TXT "v=DMARC1; p=reject; psd=y; rua=mailto:d@psd.test"
$ORIGIN ignored.test.
_dmarc  TXT "v=DMARC1; p=bogus"
$ORIGIN badsp.test.
_dmarc  TXT "v=DMARC1; p=reject; sp=bogus; rua=mailto:d@badsp.test"
`

func TestCheckDomain(t *testing.T) {
	_, r := resolver(t, auditZone)
	tests := []struct {
		domain string
		status report.Status
		want   []string
		not    []string
	}{
		{"good.test", report.StatusWarn, []string{CodeReportAuth, CodeReportUnauth, CodeAlignment}, []string{CodePolicyNone, CodeNoRUA, CodeRFCsDisagree}},
		{"sub.good.test", report.StatusWarn, []string{CodeOrgFallback}, []string{CodeNoRecord}},
		{"nothing.test", report.StatusFail, []string{CodeNoRecord}, nil},
		{"none.test", report.StatusWarn, []string{CodePolicyNone}, nil},
		{"pct.test", report.StatusWarn, []string{CodePctPartial, CodeRetiredTag, CodeRFCsDisagree}, []string{CodePolicyNone}},
		{"norua.test", report.StatusWarn, []string{CodeNoRUA}, nil},
		{"multi.test", report.StatusFail, []string{CodeMultiple}, []string{CodeNoRecord}},
		{"syntax.test", report.StatusFail, []string{CodeInvalidPolicy, CodeSyntax, CodeUnknownTag}, nil},
		{"nop.test", report.StatusFail, []string{CodeMissingPolicy}, nil},
		{"version.test", report.StatusFail, []string{CodeInvalidVersion, CodeNoRecord}, nil},
		{"strict.test", report.StatusWarn, []string{CodeSPFNoAlign}, nil},
		{"strictok.test", report.StatusPass, []string{CodeAlignment}, []string{CodeSPFNoAlign}},
		{"strictneg.test", report.StatusWarn, []string{CodeSPFNoAlign}, nil},
		{"spnone.test", report.StatusWarn, []string{CodeSubdomainNone}, nil},
		{"tmode.test", report.StatusWarn, []string{CodeTesting, CodeRetiredTag, CodeRFCsDisagree}, nil},
		{"shop.psd.test", report.StatusWarn, []string{CodeRFCsDisagree, CodeOrgFallback}, nil},
		// RFC 7489 §6.6.3: invalid p and no rua → ignored; RFC 9989 applies p=none.
		{"ignored.test", report.StatusFail, []string{CodeInvalidPolicy, CodeRFCsDisagree}, []string{CodeNoRecord}},
		// invalid sp with a valid rua → RFC 7489 acts as p=none.
		{"badsp.test", report.StatusFail, []string{CodeInvalidPolicy, CodePolicyNone, CodeRFCsDisagree}, nil},
	}
	for _, tc := range tests {
		rep := report.New("check dmarc", tc.domain)
		res := CheckDomain(context.Background(), r, tc.domain, rep)
		rep.Finish()
		if rep.Status != tc.status {
			t.Errorf("%s: status %s, want %s: %+v", tc.domain, rep.Status, tc.status, rep.Findings)
		}
		for _, c := range tc.want {
			if !rep.Has(c) {
				t.Errorf("%s: no %s in %+v", tc.domain, c, rep.Findings)
			}
		}
		for _, c := range tc.not {
			if rep.Has(c) {
				t.Errorf("%s: unexpected %s in %+v", tc.domain, c, rep.Findings)
			}
		}
		if res.Domain != tc.domain {
			t.Errorf("result domain %q", res.Domain)
		}
	}
}

func TestCheckDomainDestinations(t *testing.T) {
	_, r := resolver(t, auditZone)
	rep := report.New("check dmarc", "good.test")
	res := CheckDomain(context.Background(), r, "good.test", rep)
	if len(res.Destinations) != 3 {
		t.Fatalf("destinations %+v", res.Destinations)
	}
	own, agg, ruf := res.Destinations[0], res.Destinations[1], res.Destinations[2]
	if own.External || own.Authorized != nil {
		t.Errorf("own %+v", own)
	}
	if !agg.External || agg.Authorized == nil || !*agg.Authorized {
		t.Errorf("agg %+v", agg)
	}
	if ruf.Tag != "ruf" || !ruf.External || ruf.Authorized == nil || *ruf.Authorized {
		t.Errorf("ruf %+v", ruf)
	}
}
