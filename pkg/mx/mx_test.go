package mx

import (
	"context"
	"testing"
	"time"

	"github.com/relayctl/relayctl/pkg/dnsclient"
	"github.com/relayctl/relayctl/pkg/dnstest"
	"github.com/relayctl/relayctl/pkg/report"
)

const zone = `
$ORIGIN good.test.
@        MX 10 mx1
@        MX 20 mx2
mx1      A    192.0.2.10
mx2      AAAA 2001:db8::20
$ORIGIN single.test.
@        MX 10 mail
mail     A 192.0.2.11
$ORIGIN implicit.test.
@        A 192.0.2.12
$ORIGIN nomail.test.
@        TXT "v=spf1 -all"
$ORIGIN null.test.
@        MX 0 .
$ORIGIN nullmixed.test.
@        MX 0 .
@        MX 10 mail.good.test.
$ORIGIN alias.test.
@        MX 10 mx
mx       CNAME real
real     A 192.0.2.13
$ORIGIN broken.test.
@        MX 10 gone.broken.test.
@        MX 20 noaddr
noaddr   TXT "no address here"
$ORIGIN half.test.
@        MX 10 gone
@        MX 20 mx1.good.test.
$ORIGIN private.test.
@        MX 10 mx
mx       A 10.0.0.5
$ORIGIN literal.test.
@        MX 10 192.0.2.1.
`

func check(t *testing.T, srv *dnstest.Server, domain string) (*Result, *report.Report) {
	t.Helper()
	c, err := dnsclient.New([]string{srv.Addr()}, dnsclient.WithTimeout(time.Second), dnsclient.WithRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	rep := report.New("check mx", domain)
	res := Check(context.Background(), c, domain, rep)
	rep.Finish()
	return res, rep
}

func TestCheck(t *testing.T) {
	srv := dnstest.Start(t, zone)
	tests := []struct {
		domain string
		status report.Status
		codes  []string
		hosts  int
	}{
		{"good.test", report.StatusPass, nil, 2},
		{"single.test", report.StatusPass, []string{CodeSingleHost}, 1},
		{"implicit.test", report.StatusWarn, []string{CodeImplicit}, 1},
		{"nomail.test", report.StatusFail, []string{CodeNone}, 1},
		{"null.test", report.StatusPass, []string{CodeNull}, 0},
		{"nullmixed.test", report.StatusFail, []string{CodeNullMixed}, 1},
		{"alias.test", report.StatusWarn, []string{CodeCNAME}, 1},
		{"broken.test", report.StatusFail, []string{CodeUnresolvable, CodeNoUsableHost}, 2},
		{"half.test", report.StatusFail, []string{CodeUnresolvable}, 2},
		{"private.test", report.StatusWarn, []string{CodePrivate}, 1},
		{"literal.test", report.StatusFail, []string{CodeIPTarget}, 1},
		{"nowhere.test", report.StatusFail, []string{CodeDomainNotFound}, 0},
	}
	for _, tc := range tests {
		res, rep := check(t, srv, tc.domain)
		if rep.Status != tc.status || len(res.Hosts) != tc.hosts {
			t.Errorf("%s: status %s with %d hosts, want %s with %d: %+v", tc.domain, rep.Status, len(res.Hosts), tc.status, tc.hosts, rep.Findings)
		}
		for _, c := range tc.codes {
			if !rep.Has(c) {
				t.Errorf("%s: no %s in %+v", tc.domain, c, rep.Findings)
			}
		}
	}
}

func TestCheckOrderAndAddresses(t *testing.T) {
	srv := dnstest.Start(t, zone)
	res, _ := check(t, srv, "good.test")
	if res.Hosts[0].Name != "mx1.good.test" || res.Hosts[0].Addresses[0] != "192.0.2.10" || res.Hosts[1].Addresses[0] != "2001:db8::20" {
		t.Errorf("hosts %+v", res.Hosts)
	}
	res, _ = check(t, srv, "alias.test")
	if res.Hosts[0].CNAME != "real.alias.test" {
		t.Errorf("cname %+v", res.Hosts[0])
	}
}

func TestCheckDNSFailure(t *testing.T) {
	srv := dnstest.Start(t, zone)
	srv.Set("mx2.good.test", 0, dnstest.ServFail)
	_, rep := check(t, srv, "good.test")
	if rep.Status != report.StatusError || !rep.Has(CodeDNS) {
		t.Errorf("status %s %+v", rep.Status, rep.Findings)
	}
	srv.Set("good.test", 0, dnstest.Timeout)
	_, rep = check(t, srv, "good.test")
	if rep.Status != report.StatusError {
		t.Errorf("timeout: status %s", rep.Status)
	}
}
