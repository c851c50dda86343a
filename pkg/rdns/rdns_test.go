package rdns

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/relayctl/relayctl/pkg/dnsclient"
	"github.com/relayctl/relayctl/pkg/dnstest"
	"github.com/relayctl/relayctl/pkg/report"
)

const zone = `
10.2.0.192.in-addr.arpa.  PTR mail.example.test.
11.2.0.192.in-addr.arpa.  PTR unconfirmed.example.test.
12.2.0.192.in-addr.arpa.  PTR 192-0-2-12.dsl.isp.test.
13.2.0.192.in-addr.arpa.  PTR a.example.test.
13.2.0.192.in-addr.arpa.  PTR b.example.test.
5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa. PTR mail6.example.test.
$ORIGIN example.test.
mail        A    192.0.2.10
other       A    192.0.2.10
unconfirmed A    192.0.2.99
a           A    192.0.2.13
mail6       AAAA 2001:db8::25
$ORIGIN isp.test.
192-0-2-12.dsl A 192.0.2.12
`

func check(t *testing.T, srv *dnstest.Server, ip, helo string) (*Result, *report.Report) {
	t.Helper()
	c, err := dnsclient.New([]string{srv.Addr()}, dnsclient.WithTimeout(time.Second), dnsclient.WithRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	rep := report.New("check ptr", ip)
	res := Check(context.Background(), c, net.ParseIP(ip), helo, rep)
	rep.Finish()
	return res, rep
}

func TestCheck(t *testing.T) {
	srv := dnstest.Start(t, zone)
	tests := []struct {
		ip, helo string
		status   report.Status
		fcrdns   bool
		codes    []string
	}{
		{"192.0.2.10", "", report.StatusPass, true, []string{CodeConfirmed}},
		{"192.0.2.10", "mail.example.test", report.StatusPass, true, []string{CodeHELOMatch}},
		{"192.0.2.10", "MAIL.example.test.", report.StatusPass, true, []string{CodeHELOMatch}},
		{"192.0.2.10", "other.example.test", report.StatusWarn, true, []string{CodeHELOMismatch}},
		{"192.0.2.10", "nowhere.example.test", report.StatusWarn, true, []string{CodeHELOMismatch, CodeHELONoResolve}},
		{"192.0.2.11", "", report.StatusFail, false, []string{CodeNotConfirmed}},
		{"192.0.2.12", "", report.StatusWarn, true, []string{CodeGeneric}},
		{"192.0.2.13", "", report.StatusWarn, true, []string{CodeMultiple}},
		{"192.0.2.14", "", report.StatusFail, false, []string{CodeNone}},
		{"2001:db8::25", "mail6.example.test", report.StatusPass, true, []string{CodeHELOMatch}},
	}
	for _, tc := range tests {
		res, rep := check(t, srv, tc.ip, tc.helo)
		if rep.Status != tc.status || res.FCrDNS != tc.fcrdns {
			t.Errorf("%s %s: status %s fcrdns %v, want %s %v: %+v", tc.ip, tc.helo, rep.Status, res.FCrDNS, tc.status, tc.fcrdns, rep.Findings)
		}
		for _, c := range tc.codes {
			if !rep.Has(c) {
				t.Errorf("%s %s: no %s in %+v", tc.ip, tc.helo, c, rep.Findings)
			}
		}
	}
}

func TestCheckDNSFailure(t *testing.T) {
	srv := dnstest.Start(t, zone)
	srv.Set("10.2.0.192.in-addr.arpa", 0, dnstest.ServFail)
	_, rep := check(t, srv, "192.0.2.10", "")
	if rep.Status != report.StatusError || !rep.Has(CodeDNS) {
		t.Errorf("status %s %+v", rep.Status, rep.Findings)
	}
}
