package dnsbl

import (
	"context"
	"testing"

	"github.com/relayctl/relayctl/pkg/dnstest"
)

func TestSelfTest(t *testing.T) {
	srv := dnstest.Start(t, lists+`
2.0.0.127.refusing.example. A 127.255.255.254
1.0.0.127.refusing.example. A 127.255.255.254
2.0.0.127.hijacked.example. A 203.0.113.1
`)
	srv.Set("2.0.0.127.slow.example", 0, dnstest.Timeout)
	c := checker(t, srv, "zen.spamhaus.org", "b.barracudacentral.org", "dbl.spamhaus.org", "multi.uribl.com",
		"dead.example", "everything.example", "refusing.example", "hijacked.example", "slow.example", "rhsbl.dead.example:domain")
	got := map[string]SelfTest{}
	for _, st := range c.SelfTest(context.Background()) {
		got[st.Zone] = st
	}
	want := map[string]string{
		"zen.spamhaus.org":       SelfTestOK, // IPv4 and IPv6 test points
		"b.barracudacentral.org": SelfTestOK,
		"dbl.spamhaus.org":       SelfTestOK, // dbltest.com
		"multi.uribl.com":        SelfTestOK, // test.uribl.com
		"dead.example":           SelfTestDead,
		"everything.example":     SelfTestListsEverything,
		"refusing.example":       SelfTestRefused,
		"hijacked.example":       SelfTestBadAnswer,
		"slow.example":           SelfTestUnreachable,
		"rhsbl.dead.example":     SelfTestDead,
	}
	for zone, status := range want {
		if got[zone].Status != status {
			t.Errorf("%s: %s (%s), want %s", zone, got[zone].Status, got[zone].Message, status)
		}
	}
	if n := len(got["zen.spamhaus.org"].Probes); n != 4 {
		t.Errorf("zen: %d probes, want IPv4 and IPv6 test points", n)
	}
	if p := got["rhsbl.dead.example"].Probes; p[0].Query != "test.rhsbl.dead.example" || p[1].Query != "invalid.rhsbl.dead.example" {
		t.Errorf("domain probes %+v", p)
	}
}
