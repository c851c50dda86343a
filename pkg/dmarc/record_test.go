package dmarc

import (
	"errors"
	"reflect"
	"slices"
	"testing"

	msgdmarc "github.com/emersion/go-msgauth/dmarc"

	"github.com/relayctl/relayctl/pkg/report"
)

func codes(r *Record) []string {
	var out []string
	for _, p := range r.Problems {
		out = append(out, p.Code)
	}
	return out
}

func TestParse(t *testing.T) {
	r, err := Parse("v=DMARC1; p=reject; sp=quarantine; np=reject; adkim=s; aspf=r; pct=50; fo=1:d; rf=afrf; ri=3600; " +
		"rua=mailto:agg@example.com,mailto:dmarc@reports.example.net!10m; ruf=mailto:forensic%40x@example.com; psd=n; t=y;")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Problems) != 0 {
		t.Errorf("problems: %+v", r.Problems)
	}
	want := Record{Policy: PolicyReject, SubdomainPolicy: PolicyQuarantine, NonexistentPolicy: PolicyReject,
		ADKIM: Strict, ASPF: Relaxed, Percent: 50, FailureOptions: []string{"1", "d"}, ReportFormat: []string{"afrf"},
		ReportInterval: 3600, PSD: "n", Testing: true, ValidPolicy: true}
	got := *r
	got.Raw, got.Tags, got.RUA, got.RUF, got.Problems = "", nil, nil, nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if len(r.RUA) != 2 || r.RUA[1].Domain != "reports.example.net" || r.RUA[1].MaxSize != 10<<20 || r.RUA[0].Address != "agg@example.com" {
		t.Errorf("rua %+v", r.RUA)
	}
	if len(r.RUF) != 1 || r.RUF[0].Address != "forensic@x@example.com" || r.RUF[0].Domain != "example.com" {
		t.Errorf("ruf %+v", r.RUF)
	}
}

func TestParseDefaults(t *testing.T) {
	r, err := Parse("v=DMARC1;p=none")
	if err != nil {
		t.Fatal(err)
	}
	if r.ADKIM != Relaxed || r.ASPF != Relaxed || r.Percent != 100 || r.ReportInterval != 86400 ||
		!slices.Equal(r.FailureOptions, []string{"0"}) || r.SubdomainPolicy != "" || len(r.Problems) != 0 {
		t.Errorf("defaults %+v", r)
	}
	if r.String() != "v=DMARC1; p=none" {
		t.Errorf("String() = %q", r.String())
	}
}

func TestParseNotDMARC(t *testing.T) {
	for _, txt := range []string{"", "v=spf1 -all", "p=reject; v=DMARC1", "v=dmarc1; p=reject", "v=DMARC2; p=none", "; v=DMARC1", "v DMARC1"} {
		if _, err := Parse(txt); !errors.Is(err, ErrNotDMARC) {
			t.Errorf("Parse(%q) err = %v, want ErrNotDMARC", txt, err)
		}
	}
	// RFC 7489 §6.4: whitespace around "=" and the version tag's name are
	// free; the value DMARC1 is case-sensitive.
	if _, err := Parse("V = DMARC1 ;p=none"); err != nil {
		t.Errorf("V = DMARC1: %v", err)
	}
}

func TestParseProblems(t *testing.T) {
	tests := []struct {
		txt  string
		want []string
	}{
		{"v=DMARC1", []string{CodeMissingPolicy}},
		{"v=DMARC1; p=block", []string{CodeInvalidPolicy}},
		{"v=DMARC1; p=none; sp=maybe", []string{CodeInvalidPolicy}},
		{"v=DMARC1; p=none; pct=101", []string{CodeSyntax}},
		{"v=DMARC1; p=none; pct=-1", []string{CodeSyntax}},
		{"v=DMARC1; p=none; pct=abc", []string{CodeSyntax}},
		{"v=DMARC1; p=none; adkim=x", []string{CodeSyntax}},
		{"v=DMARC1; p=none; aspf=relaxed", []string{CodeSyntax}},
		{"v=DMARC1; p=none; fo=2", []string{CodeSyntax}},
		{"v=DMARC1; p=none; rf=iodef", []string{CodeSyntax}},
		{"v=DMARC1; p=none; ri=soon", []string{CodeSyntax}},
		{"v=DMARC1; p=none; psd=maybe", []string{CodeSyntax}},
		{"v=DMARC1; p=none; t=1", []string{CodeSyntax}},
		{"v=DMARC1; p=none; rua=agg@example.com", []string{CodeInvalidURI}},
		{"v=DMARC1; p=none; rua=https://example.com/r", []string{CodeInvalidURI}},
		{"v=DMARC1; p=none; rua=mailto:nobody", []string{CodeInvalidURI}},
		{"v=DMARC1; p=none; rua=mailto:a@example.com!10x", []string{CodeInvalidURI}},
		{"v=DMARC1; p=none; rua=mailto:a@example.com,", []string{CodeInvalidURI}},
		{"v=DMARC1; p=none; p=reject", []string{CodeDuplicateTag}},
		{"v=DMARC1; p=none; foo=bar", []string{CodeUnknownTag}},
		{"v=DMARC1; p=none; garbage", []string{CodeSyntax}},
		{"v=DMARC1; rua=mailto:a@example.com; p=none", []string{CodePolicyOrder}},
		{"v=DMARC1; p=none;;; ", nil},
	}
	for _, tc := range tests {
		r, err := Parse(tc.txt)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.txt, err)
			continue
		}
		if got := codes(r); !slices.Equal(got, tc.want) {
			t.Errorf("Parse(%q) problems %v (%+v), want %v", tc.txt, got, r.Problems, tc.want)
		}
	}
}

func TestInvalidValuesKeepDefaults(t *testing.T) {
	r, _ := Parse("v=DMARC1; p=reject; pct=500; adkim=x")
	if r.Percent != 100 || r.ADKIM != Relaxed || r.Policy != PolicyReject {
		t.Errorf("%+v", r)
	}
	r, _ = Parse("v=DMARC1; p=bogus")
	if r.ValidPolicy || r.Policy != PolicyNone {
		t.Errorf("invalid p: %+v", r)
	}
}

func TestAligned(t *testing.T) {
	tests := []struct {
		from, id string
		mode     Alignment
		want     bool
	}{
		{"example.com", "example.com", Strict, true},
		{"Example.COM.", "example.com", Strict, true},
		{"example.com", "mail.example.com", Strict, false},
		{"example.com", "mail.example.com", Relaxed, true},
		{"news.example.com", "example.com", Relaxed, true},
		{"example.com", "example.net", Relaxed, false},
		{"example.co.uk", "other.co.uk", Relaxed, false}, // co.uk is a public suffix
		{"a.example.co.uk", "b.example.co.uk", Relaxed, true},
		{"example.test", "mail.example.test", Relaxed, true},
		{"example.com", "", Relaxed, false},
	}
	for _, tc := range tests {
		if got := Aligned(tc.from, tc.id, tc.mode, OrganizationalDomain); got != tc.want {
			t.Errorf("Aligned(%q, %q, %s) = %v", tc.from, tc.id, tc.mode, got)
		}
	}
}

func TestOrganizationalDomain(t *testing.T) {
	for in, want := range map[string]string{
		"example.com": "example.com", "a.b.example.com": "example.com", "x.example.co.uk": "example.co.uk",
		"co.uk": "co.uk", "mail.example.test": "example.test", "com": "com",
	} {
		if got := OrganizationalDomain(in); got != want {
			t.Errorf("OrganizationalDomain(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWalk(t *testing.T) {
	got := walk("a.b.c.d.e.f.g.h.i.example.com")
	want := []string{"a.b.c.d.e.f.g.h.i.example.com", "e.f.g.h.i.example.com", "f.g.h.i.example.com", "g.h.i.example.com",
		"h.i.example.com", "i.example.com", "example.com", "com"}
	if !slices.Equal(got, want) {
		t.Errorf("walk = %v", got)
	}
	if got := walk("mail.example.com"); !slices.Equal(got, []string{"mail.example.com", "example.com", "com"}) {
		t.Errorf("walk = %v", got)
	}
}

// FuzzParse checks that Parse never panics and that the canonical form
// of a parsed record parses to the same record.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"v=DMARC1; p=reject; sp=quarantine; adkim=s; aspf=s; pct=20; rua=mailto:a@example.com!10m,mailto:b@example.net; ruf=mailto:c@example.org; fo=1:d:s; rf=afrf; ri=86400",
		"v=DMARC1;p=none", "v=DMARC1", "v=DMARC1; p=bogus; rua=mailto:x@y.z", "V = DMARC1 ; P = Reject ;",
		"v=DMARC1; np=reject; psd=y; t=y", "v=DMARC1; p=none; rua=mailto:%61@example.com?subject=x!1t",
		"v=DMARC1; p=none; p=reject", "v=DMARC1; foo; =; ;", "v=spf1 -all", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrNotDMARC) {
				t.Fatalf("unexpected error type %v", err)
			}
			return
		}
		canon := r.String()
		r2, err := Parse(canon)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", canon, s, err)
		}
		if r2.String() != canon {
			t.Fatalf("canonical form not stable: %q → %q", canon, r2.String())
		}
		if r.Policy != r2.Policy || r.Percent != r2.Percent || r.ADKIM != r2.ADKIM || r.ASPF != r2.ASPF ||
			r.SubdomainPolicy != r2.SubdomainPolicy || len(r.RUA) != len(r2.RUA) || r.ValidPolicy != r2.ValidPolicy {
			t.Fatalf("round trip of %q changed the record: %+v → %+v", s, r, r2)
		}
		// Differential check against go-msgauth's (stricter, error on any
		// invalid tag) parser: where both accept the record without
		// errors, they must read the policy the same way.
		for _, p := range r.Problems {
			if p.Severity == report.SeverityError {
				return
			}
		}
		m, err := msgdmarc.Parse(s)
		if err != nil {
			return
		}
		pct := 100
		if m.Percent != nil {
			pct = *m.Percent
		}
		if string(m.Policy) != string(r.Policy) || string(m.SubdomainPolicy) != string(r.SubdomainPolicy) ||
			string(m.DKIMAlignment) != string(r.ADKIM) || string(m.SPFAlignment) != string(r.ASPF) || pct != r.Percent {
			t.Fatalf("%q: go-msgauth reads p=%s sp=%s adkim=%s aspf=%s pct=%d, we read p=%s sp=%s adkim=%s aspf=%s pct=%d",
				s, m.Policy, m.SubdomainPolicy, m.DKIMAlignment, m.SPFAlignment, pct, r.Policy, r.SubdomainPolicy, r.ADKIM, r.ASPF, r.Percent)
		}
	})
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{"Example.COM.": "example.com", " bücher.example ": "xn--bcher-kva.example", "": ""} {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}
