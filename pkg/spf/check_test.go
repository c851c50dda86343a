package spf_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/relayctl/relayctl/pkg/dnsclient"
	"github.com/relayctl/relayctl/pkg/dnstest"
	"github.com/relayctl/relayctl/pkg/spf"
)

func checker(t *testing.T, zone string) (*spf.Checker, *dnstest.Server) {
	t.Helper()
	srv := dnstest.Start(t, zone)
	c, err := dnsclient.New([]string{srv.Addr()}, dnsclient.WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return &spf.Checker{Resolver: c, HELO: "mail.example.com"}, srv
}

// An IPv6 client against "mx" with IPv4-only MX hosts: the hosts' empty
// AAAA answers are not void terms, so the result is fail, not permerror.
func TestCheckHostMXHostsNotVoid(t *testing.T) {
	c, _ := checker(t, `
example.com.     TXT "v=spf1 mx -all"
example.com.     MX 10 mx1.example.com.
example.com.     MX 20 mx2.example.com.
example.com.     MX 30 mx3.example.com.
mx1.example.com. A 192.0.2.1
mx2.example.com. A 192.0.2.2
mx3.example.com. A 192.0.2.3
`)
	o := c.CheckHost(context.Background(), net.ParseIP("2001:db8::1"), "example.com", "a@example.com")
	if o.Result != spf.Fail || o.VoidLookups != 0 {
		t.Fatalf("result %s (void %d, err %v), want fail with no void lookups", o.Result, o.VoidLookups, o.Err)
	}
	o = c.CheckHost(context.Background(), net.ParseIP("192.0.2.3"), "example.com", "a@example.com")
	if o.Result != spf.Pass || o.Matched != "mx" || o.Lookups != 1 {
		t.Fatalf("%+v", o)
	}
}

func TestCheckHostErrors(t *testing.T) {
	c, srv := checker(t, `
loop.example.com. TXT "v=spf1 include:loop.example.com -all"
dns.example.com.  TXT "v=spf1 a:down.example.com -all"
`)
	ctx := context.Background()
	o := c.CheckHost(ctx, net.ParseIP("192.0.2.1"), "loop.example.com", "")
	if o.Result != spf.PermError || o.Lookups != 11 {
		t.Fatalf("loop: %+v", o)
	}
	srv.Set("down.example.com", 0, dnstest.ServFail)
	o = c.CheckHost(ctx, net.ParseIP("192.0.2.1"), "dns.example.com", "")
	if o.Result != spf.TempError || o.Err == nil {
		t.Fatalf("servfail: %+v", o)
	}
	o = (&spf.Checker{}).CheckHost(ctx, net.ParseIP("192.0.2.1"), "dns.example.com", "")
	if o.Result != spf.TempError {
		t.Fatalf("nil resolver: %+v", o)
	}
}

func TestCheckHostTrace(t *testing.T) {
	c, _ := checker(t, `
example.com.      TXT "v=spf1 ip4:192.0.2.0/24 include:_spf.example.net redirect=r.example.org"
_spf.example.net. TXT "v=spf1 ip4:198.51.100.0/24 -all"
r.example.org.    TXT "v=spf1 ~all"
`)
	o := c.CheckHost(context.Background(), net.ParseIP("203.0.113.1"), "example.com", "")
	if o.Result != spf.SoftFail || o.Domain != "r.example.org" || o.Matched != "~all" {
		t.Fatalf("%+v", o)
	}
	want := []spf.Step{
		{0, "example.com", "ip4:192.0.2.0/24", "no match"},
		{0, "example.com", "include:_spf.example.net", "no match"},
		{1, "_spf.example.net", "ip4:198.51.100.0/24", "no match"},
		{1, "_spf.example.net", "-all", "match"},
		{0, "example.com", "redirect=r.example.org", "follow"},
		{1, "r.example.org", "~all", "match"},
	}
	if len(o.Trace) != len(want) {
		t.Fatalf("trace %+v", o.Trace)
	}
	for i := range want {
		if o.Trace[i] != want[i] {
			t.Errorf("step %d = %+v, want %+v", i, o.Trace[i], want[i])
		}
	}
}
