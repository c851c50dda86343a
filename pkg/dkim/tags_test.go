package dkim_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/relayctl/relayctl/pkg/dkim"
)

func TestParseTagList(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // name=value|name=value, or "!" + error fragment
	}{
		{"v=DKIM1; k=rsa; p=abc", "v=DKIM1|k=rsa|p=abc"},
		{"v=DKIM1; k=rsa; p=abc;", "v=DKIM1|k=rsa|p=abc"},
		{"  v = DKIM1 ;\tp= ab cd ", "v=DKIM1|p=ab cd"},
		{"v=1;\r\n h=from : to;\r\n\tb=ab\r\n cd", "v=1|h=from : to|b=ab\r\n cd"},
		{"p=", "p="},
		{"p=;", "p="},
		{"a=1;;b=2", "a=1|b=2"},
		{"", ""},
		{";", ""},
		{"x_1=é", "!invalid character"},
		{"v=DKIM1; v=DKIM1", "!duplicate tag"},
		{"1a=b", "!must start with a letter"},
		{"novalue", `!missing "="`},
		{"a b=c", "!invalid character in tag name"},
		{"a=b\x00c", "!invalid character"},
		{"a=b\r\nc", "!whitespace"},
		{"V=DKIM1; v=x", "V=DKIM1|v=x"}, // tag names are case-sensitive
		{`p=MIGf"  "MA0`, `p=MIGf"  "MA0`},
	} {
		got, err := dkim.ParseTagList(tc.in)
		if strings.HasPrefix(tc.want, "!") {
			var te *dkim.TagError
			if err == nil || !errors.As(err, &te) || !strings.Contains(err.Error(), tc.want[1:]) {
				t.Errorf("%q: err %v, want %q", tc.in, err, tc.want[1:])
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		var parts []string
		for _, tag := range got {
			parts = append(parts, tag.Name+"="+tag.Value)
		}
		if s := strings.Join(parts, "|"); s != tc.want {
			t.Errorf("%q: got %q, want %q", tc.in, s, tc.want)
		}
	}
}

func TestSplitListAndStripFWS(t *testing.T) {
	if got := dkim.SplitList(" from : To:\r\n subject ::"); strings.Join(got, ",") != "from,To,subject" {
		t.Errorf("SplitList: %q", got)
	}
	if got := dkim.StripFWS("ab c\r\n\td"); got != "abcd" {
		t.Errorf("StripFWS: %q", got)
	}
}

// FuzzParseTagList: the parser never panics, accepted lists have valid,
// unique names and values of VALCHAR/FWS only, and re-serialising an
// accepted list parses back to the same tags.
func FuzzParseTagList(f *testing.F) {
	for _, s := range []string{
		"v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB",
		"v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
		"v=1; a=rsa-sha256; c=relaxed/relaxed;\r\n d=example.com; s=s1; h=from : to;\r\n bh=abc=; b=ab\r\n cd",
		"v=DKIM1; p=", ";;", "a=1;a=2", "t=y:s; h=sha1:sha256; s=email:*", "p=\"abc\" def", "k =rsa ; p = x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tags, err := dkim.ParseTagList(s)
		if err != nil {
			var te *dkim.TagError
			if !errors.As(err, &te) || te.Pos < 0 || te.Pos > len(s) {
				t.Fatalf("error %v (%T) with bad position for %q", err, err, s)
			}
			return
		}
		seen := map[string]bool{}
		var b strings.Builder
		for _, tag := range tags {
			if tag.Name == "" || seen[tag.Name] || strings.ContainsAny(tag.Name, "=; \t\r\n") {
				t.Fatalf("bad tag name %q in %q", tag.Name, s)
			}
			seen[tag.Name] = true
			if strings.ContainsAny(tag.Value, ";") || strings.TrimSpace(tag.Value) != tag.Value {
				t.Fatalf("bad value %q in %q", tag.Value, s)
			}
			for _, c := range []byte(tag.Value) {
				if c > 0x7e || (c < 0x21 && c != ' ' && c != '\t' && c != '\r' && c != '\n') {
					t.Fatalf("value %q holds byte %#x", tag.Value, c)
				}
			}
			b.WriteString(tag.Name + "=" + tag.Value + "; ")
		}
		again, err := dkim.ParseTagList(b.String())
		if err != nil || len(again) != len(tags) {
			t.Fatalf("re-serialised %q does not parse back: %v", b.String(), err)
		}
		for i := range again {
			if again[i].Name != tags[i].Name || again[i].Value != tags[i].Value {
				t.Fatalf("round trip %q → %q changed tag %d", s, b.String(), i)
			}
		}
		// Whatever parses must audit without panicking.
		dkim.AuditKeyRecord(s)
	})
}
