package check_test

import (
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/relayctl/relayctl/cmd/cmdtest"
	"github.com/relayctl/relayctl/pkg/dnstest"
)

const spfZone = `
example.com.       TXT "v=spf1 ip4:192.0.2.0/24 ip4:192.0.2.10 include:_spf.example.net mx a:nohost.example.com ~all"
example.com.       TXT "google-site-verification=abc"
example.com.       MX 10 mx1.example.com.
mx1.example.com.   A 192.0.2.25
_spf.example.net.  TXT "v=spf1 include:a.example.net include:b.example.net ?all"
a.example.net.     TXT "v=spf1 ip4:198.51.100.0/24 -all"
b.example.net.     TXT "v=spf1 a ptr include:missing.example.net -all"
b.example.net.     A 198.51.100.7
clean.example.org. TXT "v=spf1 ip4:203.0.113.0/24 include:a.example.net -all"
clean.example.org. TXT "v=DMARC1; not spf"
exp.example.org.   TXT "v=spf1 ip4:203.0.113.0/24 -all exp=why.example.org"
why.example.org.   TXT "%{i} is not one of %{d}'s outbound relays"
nospf.example.org. TXT "hello"
bad.example.org.   TXT "v=spf1 ip4:203.0.113.0/24 inclde:foo.example.com -all"
`

func TestCheckSPFTree(t *testing.T) {
	srv := dnstest.Start(t, spfZone)
	r := cmdtest.Run(t, "check", "spf", "example.com", "--resolver", srv.Addr())
	t.Logf("\n%s", r.Stdout)
	if r.Code != 1 {
		t.Fatalf("exit %d, want 1 (include of a missing domain is an error)\nstderr: %s", r.Code, r.Stderr)
	}
	for _, want := range []string{
		"include:_spf.example.net", "include:missing.example.net", "no SPF record",
		"spf.include-none", "spf.ip-overlap", "spf.ptr", "spf.void-lookup",
	} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	for _, l := range strings.Split(r.Stdout, "\n") {
		if n := len([]rune(l)); n > 80 {
			t.Errorf("line of %d columns: %q", n, l)
		}
	}
}

func TestCheckSPFJSON(t *testing.T) {
	srv := dnstest.Start(t, spfZone)
	r := cmdtest.Run(t, "check", "spf", "example.com", "--json", "--resolver", srv.Addr())
	env := r.Envelope(t)
	if env.Command != "check spf" || env.Target != "example.com" || env.Status != "fail" {
		t.Fatalf("envelope %+v", env)
	}
	var res struct {
		Record      string `json:"record"`
		Lookups     int    `json:"lookups"`
		VoidLookups int    `json:"void_lookups"`
		Tree        struct {
			Domain   string `json:"domain"`
			Cost     int    `json:"cost"`
			Lookups  int    `json:"lookups"`
			Children []struct {
				Domain  string `json:"domain"`
				Cost    int    `json:"cost"`
				Lookups int    `json:"lookups"`
			} `json:"children"`
		} `json:"tree"`
	}
	if err := json.Unmarshal(env.Result, &res); err != nil {
		t.Fatal(err)
	}
	// example.com: include, mx, a = 3; _spf.example.net: 2 includes;
	// b.example.net: a, ptr, include = 3; total 8.
	if res.Lookups != 8 || res.Tree.Cost != 3 || res.Tree.Lookups != 8 {
		t.Fatalf("lookups %d, root cost %d total %d; want 8, 3, 8", res.Lookups, res.Tree.Cost, res.Tree.Lookups)
	}
	if len(res.Tree.Children) != 1 || res.Tree.Children[0].Domain != "_spf.example.net" || res.Tree.Children[0].Lookups != 5 {
		t.Fatalf("children %+v", res.Tree.Children)
	}
	// a:nohost.example.com is void, and so is the missing include.
	if res.VoidLookups != 2 {
		t.Fatalf("void lookups %d, want 2", res.VoidLookups)
	}
	if !strings.HasPrefix(res.Record, "v=spf1 ") {
		t.Fatalf("record %q", res.Record)
	}
}

func TestCheckSPFEvaluate(t *testing.T) {
	srv := dnstest.Start(t, spfZone)
	cases := []struct {
		args       []string
		code       int
		result     string
		mechanism  string
		explaining string
	}{
		{[]string{"clean.example.org", "--ip", "203.0.113.9"}, 0, "pass", "ip4:203.0.113.0/24", ""},
		{[]string{"--ip", "198.51.100.20", "--sender", "bounce@clean.example.org"}, 0, "pass", "include:a.example.net", ""},
		{[]string{"--ip", "192.0.2.99", "--helo", "exp.example.org"}, 1, "fail", "-all", "192.0.2.99 is not one of exp.example.org's outbound relays"},
		{[]string{"bad.example.org", "--ip", "192.0.2.1"}, 1, "permerror", "", ""},
		{[]string{"nospf.example.org", "--ip", "192.0.2.1"}, 1, "none", "", ""},
	}
	for _, tc := range cases {
		args := append([]string{"check", "spf", "--json", "--resolver", srv.Addr()}, tc.args...)
		r := cmdtest.Run(t, args...)
		if r.Code != tc.code {
			t.Errorf("%v: exit %d, want %d\n%s%s", tc.args, r.Code, tc.code, r.Stdout, r.Stderr)
			continue
		}
		var res struct {
			Evaluation struct {
				Result      string `json:"result"`
				Mechanism   string `json:"mechanism"`
				Explanation string `json:"explanation"`
				Trace       []struct {
					Term   string `json:"term"`
					Result string `json:"result"`
				} `json:"trace"`
			} `json:"evaluation"`
		}
		if err := json.Unmarshal(r.Envelope(t).Result, &res); err != nil {
			t.Fatal(err)
		}
		ev := res.Evaluation
		traced := false
		for _, st := range ev.Trace {
			traced = traced || (st.Term == tc.mechanism && st.Result == "match")
		}
		if tc.mechanism != "" && !traced {
			t.Errorf("%v: trace %+v does not show %q matching", tc.args, ev.Trace, tc.mechanism)
		}
		if ev.Result != tc.result || ev.Mechanism != tc.mechanism || ev.Explanation != tc.explaining {
			t.Errorf("%v: evaluation %+v, want %s %q %q", tc.args, ev, tc.result, tc.mechanism, tc.explaining)
		}
	}
	// Human output shows the result and the explanation.
	r := cmdtest.Run(t, "check", "spf", "--resolver", srv.Addr(), "--ip", "192.0.2.99", "--helo", "exp.example.org")
	if !strings.Contains(r.Stdout, "FAIL") || !strings.Contains(r.Stdout, "outbound relays") {
		t.Errorf("human output:\n%s", r.Stdout)
	}
}

func TestCheckSPFBadInput(t *testing.T) {
	srv := dnstest.Start(t, spfZone)
	for _, args := range [][]string{
		{"exa mple.com"},
		{"-invalid..com"},
		{"example.com", "--ip", "300.1.2.3"},
		{"--ip", "192.0.2.1"},
		{},
		{"example.com", "--sender", "a@example.com"},
	} {
		r := cmdtest.Run(t, append([]string{"check", "spf", "--resolver", srv.Addr()}, args...)...)
		if r.Code != 2 {
			t.Errorf("%q: exit %d, want 2", args, r.Code)
		}
		if lines := strings.Count(strings.TrimSpace(r.Stderr), "\n"); lines != 0 || r.Stderr == "" {
			t.Errorf("%q: want a one-line error, got %q", args, r.Stderr)
		}
	}
}

func TestCheckSPFNXDomainAndNoRecord(t *testing.T) {
	srv := dnstest.Start(t, spfZone)
	r := cmdtest.Run(t, "check", "spf", "gone.example.org", "--json", "--resolver", srv.Addr())
	if r.Code != 1 || !r.Envelope(t).Has("spf.nxdomain") {
		t.Fatalf("NXDOMAIN: exit %d\n%s", r.Code, r.Stdout)
	}
	r = cmdtest.Run(t, "check", "spf", "nospf.example.org", "--json", "--resolver", srv.Addr())
	if r.Code != 1 || !r.Envelope(t).Has("spf.none") {
		t.Fatalf("no record: exit %d\n%s", r.Code, r.Stdout)
	}
}

func TestCheckSPFDNSFailure(t *testing.T) {
	srv := dnstest.Start(t, spfZone)
	srv.Set("example.com", dns.TypeTXT, dnstest.ServFail)
	r := cmdtest.Run(t, "check", "spf", "example.com", "--resolver", srv.Addr())
	if r.Code != 3 || !strings.Contains(r.Stdout, srv.Addr()) {
		t.Fatalf("SERVFAIL: exit %d, want 3 naming %s\n%s%s", r.Code, srv.Addr(), r.Stdout, r.Stderr)
	}
	srv.Set("example.com", dns.TypeTXT, dnstest.Timeout)
	start := time.Now()
	r = cmdtest.Run(t, "check", "spf", "example.com", "--json", "--timeout", "200ms", "--resolver", srv.Addr())
	env := r.Envelope(t)
	if r.Code != 3 || env.Status != "error" || !strings.Contains(r.Stdout, "timeout") {
		t.Fatalf("timeout: exit %d\n%s", r.Code, r.Stdout)
	}
	if time.Since(start) > 3*time.Second {
		t.Fatalf("timeout took %v", time.Since(start))
	}
}

func TestCheckSPFSyntaxErrorShowsRecord(t *testing.T) {
	srv := dnstest.Start(t, spfZone)
	r := cmdtest.Run(t, "check", "spf", "bad.example.org", "--resolver", srv.Addr())
	if r.Code != 1 || !strings.Contains(r.Stdout, "inclde:foo.example.com") || !strings.Contains(r.Stdout, "spf.syntax") || !strings.Contains(r.Stdout, "offset 26") {
		t.Fatalf("exit %d\n%s", r.Code, r.Stdout)
	}
	t.Logf("\n%s", r.Stdout)
}

func TestCheckSPFResolverUnreachable(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close() // nothing listens there now
	r := cmdtest.Run(t, "check", "spf", "example.com", "--timeout", "300ms", "--resolver", addr)
	if r.Code != 3 || !strings.Contains(r.Stdout, addr) {
		t.Fatalf("exit %d, want 3 naming %s\n%s%s", r.Code, addr, r.Stdout, r.Stderr)
	}
}
