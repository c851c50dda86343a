package preflight

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/relayctl/relayctl/pkg/dnsbl"
	"github.com/relayctl/relayctl/pkg/dnsclient"
	"github.com/relayctl/relayctl/pkg/dnstest"
	"github.com/relayctl/relayctl/pkg/report"
)

const zone = `
$ORIGIN example.test.
@        MX  10 mx
@        TXT "v=spf1 ip4:192.0.2.0/24 -all"
mx       A   192.0.2.25
_dmarc   TXT "v=DMARC1; p=none"
25.2.0.192.in-addr.arpa. PTR mx.example.test.
2.0.0.127.zen.spamhaus.org. A 127.0.0.2
25.2.0.192.zen.spamhaus.org. A 127.0.0.2
`

func TestRun(t *testing.T) {
	srv := dnstest.Start(t, zone)
	c, err := dnsclient.New([]string{srv.Addr()}, dnsclient.WithTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	zs, err := dnsbl.ParseZones([]string{"zen.spamhaus.org"})
	if err != nil {
		t.Fatal(err)
	}
	res := Run(context.Background(), Options{
		Domain: "Example.Test.", Resolver: c, Selectors: []string{"s1"}, IP: net.ParseIP("192.0.2.25"),
		Blocklist: &dnsbl.Checker{Resolver: c, Zones: zs}, Ignore: []string{"dmarc.no-rua"},
	})
	var names []string
	status := map[string]report.Status{}
	for _, ch := range res.Checks {
		names = append(names, ch.Name)
		status[ch.Name] = ch.Status
		for _, f := range ch.Findings {
			if f.Code == "dmarc.no-rua" {
				t.Error("ignored finding kept")
			}
		}
	}
	want := []string{CheckSPF, CheckDKIM, CheckDMARC, CheckMX, CheckPTR, CheckBlocklist}
	if len(names) != len(want) {
		t.Fatalf("checks %v", names)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("checks %v, want %v", names, want)
		}
	}
	// s1 has no key (error), p=none (warning), the IP is listed (error).
	if status[CheckDKIM] != report.StatusFail || status[CheckDMARC] != report.StatusWarn || status[CheckBlocklist] != report.StatusFail ||
		status[CheckSPF] != report.StatusPass || status[CheckMX] != report.StatusPass || status[CheckPTR] != report.StatusPass {
		t.Errorf("statuses %v", status)
	}
	if res.Status != report.StatusFail || res.Domain != "example.test" || res.Incomplete() {
		t.Errorf("overall %s %s", res.Status, res.Domain)
	}
}

func TestRunMessage(t *testing.T) {
	srv := dnstest.Start(t, zone)
	c, _ := dnsclient.New([]string{srv.Addr()}, dnsclient.WithTimeout(time.Second))
	for _, tc := range []struct {
		msg  string
		code string
	}{
		{"From: a@other.test\r\n\r\nhi\r\n", "dmarc.message-other-domain"},
		{"not a message", "dmarc.message-unreadable"},
	} {
		res := Run(context.Background(), Options{Domain: "example.test", Resolver: c, Selectors: []string{"s1"}, Message: []byte(tc.msg)})
		last := res.Checks[len(res.Checks)-1]
		found := false
		for _, f := range last.Findings {
			found = found || f.Code == tc.code
		}
		if last.Name != CheckMessage || !found {
			t.Errorf("%q: %s %+v", tc.msg, last.Name, last.Findings)
		}
	}
}

func TestRunUnauthorisedRelayAndBlocklistFailure(t *testing.T) {
	srv := dnstest.Start(t, zone)
	srv.Set("7.100.51.198.zen.spamhaus.org", 0, dnstest.ServFail)
	c, _ := dnsclient.New([]string{srv.Addr()}, dnsclient.WithTimeout(time.Second), dnsclient.WithRetries(0))
	zs, _ := dnsbl.ParseZones([]string{"zen.spamhaus.org"})
	res := Run(context.Background(), Options{Domain: "example.test", Resolver: c, Selectors: []string{"s1"},
		IP: net.ParseIP("198.51.100.7"), Blocklist: &dnsbl.Checker{Resolver: c, Zones: zs}})
	has := func(name, code string) bool {
		for _, ch := range res.Checks {
			if ch.Name != name {
				continue
			}
			for _, f := range ch.Findings {
				if f.Code == code {
					return true
				}
			}
		}
		return false
	}
	if !has(CheckSPF, "spf.eval-fail") || !has(CheckPTR, "ptr.none") || !has(CheckBlocklist, "blocklist.query-failed") {
		t.Errorf("%+v", res.Checks)
	}
	if res.Status != report.StatusFail || !res.Incomplete() {
		t.Errorf("status %s incomplete %v", res.Status, res.Incomplete())
	}
}
