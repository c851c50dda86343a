package dmarc

import (
	"bytes"
	"context"
	"crypto"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/relayctl/relayctl/pkg/dkim"
	"github.com/relayctl/relayctl/pkg/dnsclient"
	"github.com/relayctl/relayctl/pkg/dnstest"
	"github.com/relayctl/relayctl/pkg/report"
)

// signer is a DKIM key published in the test zone for one domain.
type signer struct {
	domain, selector string
	key              crypto.Signer
}

// keys generates an Ed25519 key per domain and returns the zone lines
// publishing them under selector "sel".
func keys(t testing.TB, domains ...string) (map[string]signer, string) {
	t.Helper()
	out := map[string]signer{}
	var zone strings.Builder
	for _, d := range domains {
		k, err := dkim.GenerateKey(dkim.AlgoEd25519, 0)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := dkim.NewRecord("sel", d, k.Public())
		if err != nil {
			t.Fatal(err)
		}
		zone.WriteString(rec.ZoneLine + "\n")
		out[d] = signer{domain: d, selector: "sel", key: k}
	}
	return out, zone.String()
}

func message(from string) []byte {
	return []byte("From: " + from + "\r\nTo: someone@receiver.test\r\nSubject: invoice\r\nDate: Sun, 29 Nov 2026 12:00:00 +0000\r\nMessage-ID: <1@example.test>\r\n\r\nHello.\r\n")
}

func sign(t testing.TB, s signer, msg []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := dkim.Sign(&b, bytes.NewReader(msg), dkim.SignOptions{Domain: s.domain, Selector: s.selector, Signer: s.key}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

const messageZone = `
$ORIGIN example.test.
@        TXT "v=spf1 ip4:192.0.2.0/24 -all"
_dmarc   TXT "v=DMARC1; p=reject; sp=quarantine; rua=mailto:d@example.test"
bounce   TXT "v=spf1 ip4:192.0.2.0/24 -all"
news     A   192.0.2.80
$ORIGIN strict.test.
@        TXT "v=spf1 ip4:192.0.2.0/24 -all"
_dmarc   TXT "v=DMARC1; p=quarantine; adkim=s; aspf=s"
bounce   TXT "v=spf1 ip4:192.0.2.0/24 -all"
$ORIGIN pct.test.
_dmarc   TXT "v=DMARC1; p=reject; pct=30"
$ORIGIN nodmarc.test.
@        TXT "v=spf1 ip4:192.0.2.0/24 -all"
`

type msgCase struct {
	name      string
	msg       []byte
	opts      MessageOptions
	dmarc     string
	bis       string
	disp      string
	alignedBy []string
	codes     []string
	status    report.Status
}

func TestCheckMessage(t *testing.T) {
	ks, keyZone := keys(t, "example.test", "mail.example.test", "strict.test", "sub.strict.test", "other.test", "pct.test", "nodmarc.test")
	_, r := resolver(t, messageZone+keyZone)
	relay := net.ParseIP("192.0.2.25")
	stranger := net.ParseIP("198.51.100.7")
	tampered := sign(t, ks["example.test"], message("a@example.test"))
	tampered = bytes.Replace(tampered, []byte("Hello."), []byte("Hello!"), 1)

	tests := []msgCase{
		{name: "dkim aligned, no ip", msg: sign(t, ks["example.test"], message("Shop <shop@example.test>")),
			dmarc: "pass", bis: "pass", disp: "none", alignedBy: []string{"dkim"}, codes: []string{CodePass, CodeSPFNotEvaluted}, status: report.StatusPass},
		{name: "dkim relaxed subdomain signer", msg: sign(t, ks["mail.example.test"], message("shop@example.test")),
			dmarc: "pass", bis: "pass", disp: "none", alignedBy: []string{"dkim"}, codes: []string{CodePass}, status: report.StatusPass},
		{name: "dkim strict subdomain signer fails", msg: sign(t, ks["sub.strict.test"], message("shop@strict.test")),
			dmarc: "fail", bis: "fail", disp: "quarantine", codes: []string{CodeFail, CodeDKIMUnaligned}, status: report.StatusFail},
		{name: "subdomain author, org signer, relaxed: sp applies", msg: sign(t, ks["example.test"], message("n@news.example.test")),
			dmarc: "pass", bis: "pass", disp: "none", alignedBy: []string{"dkim"}, status: report.StatusPass},
		{name: "subdomain author unsigned fails with sp", msg: message("n@news.example.test"), opts: MessageOptions{IP: stranger, MailFrom: "n@news.example.test"},
			dmarc: "fail", bis: "fail", disp: "quarantine", codes: []string{CodeFail, CodeNoSignature, CodeSPFNotPass}, status: report.StatusFail},
		{name: "spf only", msg: message("shop@example.test"), opts: MessageOptions{IP: relay, MailFrom: "bounce@bounce.example.test"},
			dmarc: "pass", bis: "pass", disp: "none", alignedBy: []string{"spf"}, codes: []string{CodePass, CodeNoSignature}, status: report.StatusWarn},
		{name: "spf strict unaligned", msg: message("shop@strict.test"), opts: MessageOptions{IP: relay, MailFrom: "b@bounce.strict.test"},
			dmarc: "fail", bis: "fail", disp: "quarantine", codes: []string{CodeSPFUnaligned, CodeFail}, status: report.StatusFail},
		{name: "spf strict aligned", msg: message("shop@strict.test"), opts: MessageOptions{IP: relay, MailFrom: "b@strict.test"},
			dmarc: "pass", bis: "pass", disp: "none", alignedBy: []string{"spf"}, status: report.StatusWarn},
		{name: "null sender uses helo", msg: message("shop@example.test"), opts: MessageOptions{IP: relay, HELO: "example.test"},
			dmarc: "pass", bis: "pass", disp: "none", alignedBy: []string{"spf"}, status: report.StatusWarn},
		{name: "neither aligned", msg: sign(t, ks["other.test"], message("shop@example.test")), opts: MessageOptions{IP: stranger, MailFrom: "x@example.test"},
			dmarc: "fail", bis: "fail", disp: "reject", codes: []string{CodeFail, CodeDKIMUnaligned, CodeSPFNotPass}, status: report.StatusFail},
		{name: "both aligned", msg: sign(t, ks["example.test"], message("shop@example.test")), opts: MessageOptions{IP: relay, MailFrom: "b@example.test"},
			dmarc: "pass", bis: "pass", disp: "none", alignedBy: []string{"dkim", "spf"}, status: report.StatusPass},
		{name: "broken signature, spf saves it", msg: tampered, opts: MessageOptions{IP: relay, MailFrom: "b@example.test"},
			dmarc: "pass", bis: "pass", disp: "none", alignedBy: []string{"spf"}, codes: []string{CodeDKIMNotPass}, status: report.StatusWarn},
		{name: "pct sampling differs from RFC 9989", msg: message("a@pct.test"),
			dmarc: "fail", bis: "fail", disp: "reject", codes: []string{CodeFail}, status: report.StatusFail},
		{name: "no dmarc record", msg: sign(t, ks["nodmarc.test"], message("a@nodmarc.test")),
			dmarc: "none", bis: "none", disp: "none", alignedBy: []string{"dkim"}, codes: []string{CodeNoRecord}, status: report.StatusFail},
		{name: "two authors", msg: message("a@example.test, b@other.test"),
			dmarc: "permerror", bis: "permerror", disp: "none", codes: []string{CodeFromMultiple}, status: report.StatusFail},
		{name: "no from", msg: []byte("Subject: x\r\n\r\nbody\r\n"),
			dmarc: "permerror", bis: "permerror", disp: "none", codes: []string{CodeFromMissing}, status: report.StatusFail},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep := report.New("check dmarc", "message")
			res, err := CheckMessage(context.Background(), r, tc.msg, tc.opts, rep)
			if err != nil {
				t.Fatal(err)
			}
			rep.Finish()
			if tc.alignedBy == nil {
				tc.alignedBy = []string{}
			}
			if res.DMARC != tc.dmarc || res.DMARCRFC9989 != tc.bis || res.Disposition != tc.disp || !slices.Equal(res.AlignedBy, tc.alignedBy) || rep.Status != tc.status {
				t.Errorf("dmarc %s/%s disposition %s aligned %v status %s; want %s/%s %s %v %s\n%+v",
					res.DMARC, res.DMARCRFC9989, res.Disposition, res.AlignedBy, rep.Status, tc.dmarc, tc.bis, tc.disp, tc.alignedBy, tc.status, rep.Findings)
			}
			for _, c := range tc.codes {
				if !rep.Has(c) {
					t.Errorf("no %s in %+v", c, rep.Findings)
				}
			}
			if !strings.HasPrefix(res.AuthenticationResults, "Authentication-Results: relayctl; ") {
				t.Errorf("header %q", res.AuthenticationResults)
			}
		})
	}
}

func TestCheckMessageResultFields(t *testing.T) {
	ks, keyZone := keys(t, "example.test", "pct.test")
	_, r := resolver(t, messageZone+keyZone)
	rep := report.New("check dmarc", "message")
	msg := sign(t, ks["example.test"], message("Shop <shop@example.test>"))
	res, err := CheckMessage(context.Background(), r, msg, MessageOptions{IP: net.ParseIP("192.0.2.25"), MailFrom: "b@bounce.example.test", AuthServID: "mx.receiver.test"}, rep)
	if err != nil {
		t.Fatal(err)
	}
	if res.FromDomain != "example.test" || res.SPF.Result != "pass" || res.SPF.Domain != "bounce.example.test" || !res.SPF.Aligned ||
		len(res.DKIM) != 1 || res.DKIM[0].Domain != "example.test" || res.DKIM[0].Selector != "sel" || !res.DKIM[0].Aligned ||
		res.Policy != PolicyReject || res.PolicySource != "p" || res.RecordDomain != "example.test" {
		t.Errorf("%+v", res)
	}
	want := "Authentication-Results: mx.receiver.test; spf=pass smtp.mailfrom=b@bounce.example.test; dkim=pass header.d=example.test header.s=sel; dmarc=pass header.from=example.test"
	if res.AuthenticationResults != want {
		t.Errorf("header\n got %s\nwant %s", res.AuthenticationResults, want)
	}

	// pct=30: RFC 7489 applies reject to 30%, RFC 9989 to all.
	rep = report.New("check dmarc", "message")
	res, _ = CheckMessage(context.Background(), r, message("a@pct.test"), MessageOptions{}, rep)
	if res.Percent != 30 || res.Disposition != "reject" || res.DispositionRFC9989 != "reject" || !strings.Contains(strings.Join(findingText(rep), "\n"), "30%") {
		t.Errorf("pct: %+v %+v", res, rep.Findings)
	}
}

func TestCheckMessageDNSFailure(t *testing.T) {
	ks, keyZone := keys(t, "example.test")
	srv, r := resolver(t, messageZone+keyZone)
	srv.Set("_dmarc.example.test", 0, dnstest.ServFail)
	rep := report.New("check dmarc", "message")
	res, err := CheckMessage(context.Background(), r, sign(t, ks["example.test"], message("a@example.test")), MessageOptions{}, rep)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Finish() != report.StatusError || res.DMARC != ResultTempError {
		t.Errorf("status %s dmarc %s %+v", rep.Status, res.DMARC, rep.Findings)
	}
	if _, err := CheckMessage(context.Background(), r, []byte("no header at all"), MessageOptions{}, report.New("x", "y")); err == nil {
		t.Error("unparseable message: no error")
	}
}

func findingText(rep *report.Report) []string {
	var out []string
	for _, f := range rep.Findings {
		out = append(out, f.Message)
	}
	return out
}

func TestCheckMessageTempErrorAndMultiple(t *testing.T) {
	ks, keyZone := keys(t, "example.test")
	srv, r := resolver(t, messageZone+keyZone+`
$ORIGIN multi.test.
_dmarc TXT "v=DMARC1; p=reject"
_dmarc TXT "v=DMARC1; p=none"
`)
	// The only aligned identifier's key cannot be fetched: temperror.
	srv.Set("sel._domainkey.example.test", 0, dnstest.ServFail)
	rep := report.New("check dmarc", "message")
	res, err := CheckMessage(context.Background(), r, sign(t, ks["example.test"], message("a@example.test")), MessageOptions{}, rep)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Finish() != report.StatusError || res.DMARC != ResultTempError || !rep.Has(CodeTempError) {
		t.Errorf("temperror: status %s dmarc %s %+v", rep.Status, res.DMARC, rep.Findings)
	}

	rep = report.New("check dmarc", "message")
	res, _ = CheckMessage(context.Background(), r, message("a@multi.test"), MessageOptions{}, rep)
	if rep.Finish() != report.StatusFail || res.DMARC != ResultNone || !rep.Has(CodeMultiple) {
		t.Errorf("multiple: status %s dmarc %s %+v", rep.Status, res.DMARC, rep.Findings)
	}
}

func BenchmarkParse(b *testing.B) {
	const rec = "v=DMARC1; p=reject; sp=quarantine; adkim=s; aspf=r; pct=100; fo=1:d; rua=mailto:agg@example.com,mailto:dmarc@reports.example.net!10m; ruf=mailto:f@example.com"
	for b.Loop() {
		if _, err := Parse(rec); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckMessage measures a full receiver-side evaluation: DKIM
// verification, SPF and policy discovery over loopback DNS.
func BenchmarkCheckMessage(b *testing.B) {
	ks, keyZone := keys(b, "example.test")
	srv := dnstest.Start(b, messageZone+keyZone)
	r, err := dnsclient.New([]string{srv.Addr()})
	if err != nil {
		b.Fatal(err)
	}
	msg := sign(b, ks["example.test"], message("a@example.test"))
	opts := MessageOptions{IP: net.ParseIP("192.0.2.25"), MailFrom: "b@example.test"}
	for b.Loop() {
		rep := report.New("check dmarc", "message")
		res, err := CheckMessage(context.Background(), r, msg, opts, rep)
		if err != nil || res.DMARC != ResultPass {
			b.Fatalf("%v %+v", err, res)
		}
	}
}
