package spf

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	r, err := Parse("v=spf1 +a -mx:mail.example.com/24//64 ~ptr ?include:_spf.example.net ip4:192.0.2.1/24 ip6:2001:db8::/32 exists:%{i}.bl.example.org a//48 redirect=_spf.example.com exp=why.%{d} foo=bar -all")
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		q      byte
		kind   string
		domain string
		p4, p6 int
	}{
		{'+', "a", "", -1, -1},
		{'-', "mx", "mail.example.com", 24, 64},
		{'~', "ptr", "", -1, -1},
		{'?', "include", "_spf.example.net", -1, -1},
		{'+', "ip4", "", -1, -1},
		{'+', "ip6", "", -1, -1},
		{'+', "exists", "%{i}.bl.example.org", -1, -1},
		{'+', "a", "", -1, 48},
		{'-', "all", "", -1, -1},
	}
	if len(r.Mechanisms) != len(want) {
		t.Fatalf("%d mechanisms, want %d", len(r.Mechanisms), len(want))
	}
	for i, w := range want {
		m := r.Mechanisms[i]
		if m.Qualifier != w.q || m.Kind != w.kind || m.Domain != w.domain || m.Prefix4 != w.p4 || m.Prefix6 != w.p6 {
			t.Errorf("mechanism %d = %+v, want %+v", i, m, w)
		}
	}
	if got := r.Mechanisms[4].Net.String(); got != "192.0.2.0/24" {
		t.Errorf("ip4 net %s", got)
	}
	if got := r.Mechanisms[5].Net.String(); got != "2001:db8::/32" {
		t.Errorf("ip6 net %s", got)
	}
	if r.Redirect != "_spf.example.com" || r.Exp != "why.%{d}" || len(r.Modifiers) != 3 {
		t.Errorf("modifiers: redirect %q exp %q %v", r.Redirect, r.Exp, r.Modifiers)
	}
	if r.Mechanisms[3].Pos != strings.Index(r.Raw, "?include") {
		t.Errorf("include pos %d", r.Mechanisms[3].Pos)
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		record, term string
	}{
		{"v=spf1 ip4:192.0.2.1 inclde:foo.example.com -all", "inclde:foo.example.com"},
		{"v=spf1 ip4:192.0.2.300 -all", "ip4:192.0.2.300"},
		{"v=spf1 ip4:192.0.2.1/33", "ip4:192.0.2.1/33"},
		{"v=spf1 ip6:2001:db8::/129", "ip6:2001:db8::/129"},
		{"v=spf1 ip4:1.2.3.4/024", "ip4:1.2.3.4/024"},
		{"v=spf1 a:example.123", "a:example.123"},
		{"v=spf1 a:museum", "a:museum"},
		{"v=spf1 include:", "include:"},
		{"v=spf1 exists:%{x}.example.com", "exists:%{x}.example.com"},
		{"v=spf1 exists:%{c}.example.com", "exists:%{c}.example.com"},
		{"v=spf1 a:%{d0}.example.com", "a:%{d0}.example.com"},
		{"v=spf1 a:foo%.example.com", "a:foo%.example.com"},
		{"v=spf1 redirect=a.example.com redirect=b.example.com", "redirect=b.example.com"},
		{"v=spf1 all:foo", "all:foo"},
		{"v=spf1 -all\x00", "-all\x00"},
		{"v=spf1 mx/", "mx/"},
		{"v=spf1 a/24/", "a/24/"},
	}
	for _, tc := range cases {
		_, err := Parse(tc.record)
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("%q: err %v, want *SyntaxError", tc.record, err)
			continue
		}
		if se.Term != tc.term || se.Pos != strings.Index(tc.record, tc.term) {
			t.Errorf("%q: term %q at %d, want %q at %d (%v)", tc.record, se.Term, se.Pos, tc.term, strings.Index(tc.record, tc.term), err)
		}
		if !strings.Contains(err.Error(), strconv.Quote(tc.term)) {
			t.Errorf("%q: message %q does not name the term", tc.record, err)
		}
	}
	for _, bad := range []string{"", "v=spf10", "spf1 -all", "v=spf1-all"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestExpand(t *testing.T) {
	// RFC 7208 §7.4 examples.
	mc := &MacroContext{
		Sender: "strong-bad@email.example.com", Domain: "email.example.com",
		HELO: "mx.example.org", IP: net.ParseIP("192.0.2.3").To4(), Receiver: "mx.example.org",
		Now: time.Unix(1700000000, 0),
	}
	cases := map[string]string{
		"%{s}":                              "strong-bad@email.example.com",
		"%{o}":                              "email.example.com",
		"%{d}":                              "email.example.com",
		"%{d4}":                             "email.example.com",
		"%{d3}":                             "email.example.com",
		"%{d2}":                             "example.com",
		"%{d1}":                             "com",
		"%{dr}":                             "com.example.email",
		"%{d2r}":                            "example.email",
		"%{l}":                              "strong-bad",
		"%{l-}":                             "strong.bad",
		"%{lr}":                             "strong-bad",
		"%{lr-}":                            "bad.strong",
		"%{l1r-}":                           "strong",
		"%{ir}.%{v}._spf.%{d2}":             "3.2.0.192.in-addr._spf.example.com",
		"%{lr-}.lp._spf.%{d2}":              "bad.strong.lp._spf.example.com",
		"%{lr-}.lp.%{ir}.%{v}._spf.%{d2}":   "bad.strong.lp.3.2.0.192.in-addr._spf.example.com",
		"%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}":  "3.2.0.192.in-addr.strong.lp._spf.example.com",
		"%{d2}.trusted-domains.example.net": "example.com.trusted-domains.example.net",
		"%%%_%-":                            "% %20",
		"%{S}":                              "strong-bad%40email.example.com",
	}
	for in, want := range cases {
		got, err := Expand(in, mc, false)
		if err != nil || got != want {
			t.Errorf("Expand(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	mc.IP = net.ParseIP("2001:db8::cb01")
	got, _ := Expand("%{ir}.%{v}._spf.%{d2}", mc, false)
	if want := "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com"; got != want {
		t.Errorf("ip6 = %q, want %q", got, want)
	}
	got, err := Expand("%{c} at %{t} via %{r}", mc, true)
	if err != nil || got != "2001:db8::cb01 at 1700000000 via mx.example.org" {
		t.Errorf("exp macros = %q, %v", got, err)
	}
}
