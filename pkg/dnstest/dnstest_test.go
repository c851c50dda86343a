package dnstest_test

import (
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/relayctl/relayctl/pkg/dnstest"
)

func ask(t *testing.T, addr, name string, qtype uint16, network string) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 2 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	in, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s %s: %v", name, dns.TypeToString[qtype], err)
	}
	return in
}

func TestAnswers(t *testing.T) {
	srv := dnstest.Start(t, `
$ORIGIN example.test.
@          MX  10 mx1
mx1        A   127.0.0.2
*.wild     A   127.0.0.3
loop1      CNAME loop2
loop2      CNAME loop1
dangling   CNAME nowhere
`)
	tests := []struct {
		name    string
		qtype   uint16
		rcode   int
		answers int
	}{
		{"example.test", dns.TypeMX, dns.RcodeSuccess, 1},
		{"EXAMPLE.test", dns.TypeMX, dns.RcodeSuccess, 1}, // case-insensitive
		{"example.test", dns.TypeA, dns.RcodeSuccess, 0},
		{"a.b.wild.example.test", dns.TypeA, dns.RcodeSuccess, 1},
		{"wild.example.test", dns.TypeA, dns.RcodeSuccess, 0}, // empty non-terminal
		{"nothing.example.test", dns.TypeA, dns.RcodeNameError, 0},
		{"loop1.example.test", dns.TypeA, dns.RcodeSuccess, 2},
		{"dangling.example.test", dns.TypeA, dns.RcodeNameError, 1},
	}
	for _, tc := range tests {
		in := ask(t, srv.Addr(), tc.name, tc.qtype, "udp")
		if in.Rcode != tc.rcode || len(in.Answer) != tc.answers {
			t.Errorf("%s %s: rcode %s with %d answers, want %s with %d", tc.name, dns.TypeToString[tc.qtype],
				dns.RcodeToString[in.Rcode], len(in.Answer), dns.RcodeToString[tc.rcode], tc.answers)
		}
	}
	if in := ask(t, srv.Addr(), "a.b.wild.example.test", dns.TypeA, "tcp"); in.Answer[0].Header().Name != "a.b.wild.example.test." {
		t.Errorf("wildcard owner = %s", in.Answer[0].Header().Name)
	}
}

func TestBehaviours(t *testing.T) {
	srv := dnstest.Start(t, "x.test. A 127.0.0.1\n")
	srv.Set("x.test", dns.TypeA, dnstest.ServFail)
	if in := ask(t, srv.Addr(), "x.test", dns.TypeA, "udp"); in.Rcode != dns.RcodeServerFailure {
		t.Errorf("rcode %s, want SERVFAIL", dns.RcodeToString[in.Rcode])
	}
	if in := ask(t, srv.Addr(), "x.test", dns.TypeTXT, "udp"); in.Rcode != dns.RcodeSuccess {
		t.Errorf("per-type behaviour leaked to TXT: %s", dns.RcodeToString[in.Rcode])
	}
	srv.Set("x.test", dns.TypeA, dnstest.Normal)
	srv.Set("x.test", 0, dnstest.Refused)
	if in := ask(t, srv.Addr(), "x.test", dns.TypeA, "udp"); in.Rcode != dns.RcodeRefused {
		t.Errorf("rcode %s, want REFUSED", dns.RcodeToString[in.Rcode])
	}
	srv.Set("x.test", 0, dnstest.Normal)
	srv.SetDelay(50 * time.Millisecond)
	start := time.Now()
	ask(t, srv.Addr(), "x.test", dns.TypeA, "udp")
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("answer came after %v, want at least the 50ms delay", d)
	}
	if srv.Queries() != 4 {
		t.Errorf("server counted %d queries, want 4", srv.Queries())
	}
}

func TestBadZone(t *testing.T) {
	if _, err := dnstest.New("this is not a zone"); err == nil {
		t.Fatal("bad zone accepted")
	}
}
