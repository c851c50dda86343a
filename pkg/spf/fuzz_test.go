package spf

import (
	"errors"
	"net"
	"testing"
	"time"
)

var parseSeeds = []string{
	"v=spf1 -all",
	"v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 include:_spf.example.com ~all",
	"v=spf1 a mx:mail.example.com/24//64 ptr:example.org exists:%{i}.%{l1r+-}.bl.%{d2} -all",
	"v=spf1 redirect=%{d}.spf.example.net exp=why.%{o} moo.cow-far_out=man:dog/cat",
	"v=spf1 a:foo:bar/baz.example.com a//33 ip4:1.2.3.4/032",
	"V=sPf1 +all",
	"v=spf1 ip4:192.0.2.5\n include:x.example.com",
	"v=spf1 a:%{H}.%{S2r}.x.example.com %%%_%-",
	"v=spf1 exists:%(ir).sbl.example.com",
	"v=spf1 include:example.com. a:example.com. -include:%{d} ?all",
}

// FuzzParse checks that Parse never panics, that every error is a
// *SyntaxError inside the record, and that the terms of a parsed record
// are where Pos says.
func FuzzParse(f *testing.F) {
	for _, s := range parseSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error %T %v is not a *SyntaxError", err, err)
			}
			if se.Pos < 0 || se.Pos > len(s) {
				t.Fatalf("position %d outside the record (%d bytes)", se.Pos, len(s))
			}
			return
		}
		for _, m := range r.Mechanisms {
			if m.Pos < 0 || m.Pos+len(m.Term) > len(s) || s[m.Pos:m.Pos+len(m.Term)] != m.Term {
				t.Fatalf("term %q not at %d", m.Term, m.Pos)
			}
			if (m.Kind == "ip4" || m.Kind == "ip6") != (m.Net != nil) {
				t.Fatalf("%q: Net %v", m.Term, m.Net)
			}
		}
		r2, err := Parse(r.Raw)
		if err != nil || len(r2.Mechanisms) != len(r.Mechanisms) || len(r2.Modifiers) != len(r.Modifiers) {
			t.Fatalf("re-parse differs: %v", err)
		}
	})
}

// FuzzExpand checks that macro expansion never panics and succeeds on
// exactly the macro-strings the parser accepts.
func FuzzExpand(f *testing.F) {
	for _, s := range []string{"%{i}", "%{ir}.%{v}._spf.%{d2}", "%{l1r-}.%{S}", "%%%_%-", "%{c}%{r}%{t}", "%{d0}", "%{x}", "%", "%{p}.ok", "%{o128r+-.,/_=}"} {
		f.Add(s, "user+tag@mail.example.com", "192.0.2.1", true)
		f.Add(s, "", "2001:db8::1", false)
	}
	f.Fuzz(func(t *testing.T, spec, sender, ip string, explanation bool) {
		addr := net.ParseIP(ip)
		if addr == nil {
			addr = net.IPv4(192, 0, 2, 1)
		}
		mc := &MacroContext{Sender: sender, Domain: "example.com", HELO: "mx.example.com", IP: addr, Now: time.Unix(0, 0)}
		_, perr := parseMacroString(spec, explanation)
		out, err := Expand(spec, mc, explanation)
		if (perr == nil) != (err == nil) {
			t.Fatalf("parse error %v, expand error %v", perr, err)
		}
		if err == nil && len(out) > (len(spec)+1)*(len(sender)+80) {
			t.Fatalf("expansion of %d bytes to %d", len(spec), len(out))
		}
	})
}
