package dkim_test

import (
	"bytes"
	"context"
	"crypto"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/relayctl/relayctl/pkg/dkim"
	"github.com/relayctl/relayctl/pkg/dnstest"
)

const testMsg = "From: Joe <joe@example.com>\r\nTo: suzie@example.net\r\nSubject: dinner\r\nDate: Fri, 11 Jul 2003 21:00:37 -0700\r\n\r\nHi.\r\n"

func rfc8463Key(t *testing.T) crypto.Signer {
	return ed25519FromSeed(t, "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=")
}

func sign(t *testing.T, msg string, o dkim.SignOptions) string {
	t.Helper()
	if o.Domain == "" {
		o.Domain = "example.com"
	}
	if o.Selector == "" {
		o.Selector = "ed"
	}
	if o.Signer == nil {
		o.Signer = rfc8463Key(t)
	}
	var b bytes.Buffer
	if err := dkim.Sign(&b, strings.NewReader(msg), o); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func verifyOne(t *testing.T, srv *dnstest.Server, msg string) dkim.Verification {
	t.Helper()
	r := clientFor(t, srv)
	vs, err := dkim.Verify(context.Background(), r, strings.NewReader(msg))
	if err != nil || len(vs) != 1 {
		t.Fatalf("verify: %+v %v", vs, err)
	}
	return vs[0]
}

func TestVerifyResults(t *testing.T) {
	srv, _ := serve(t, `
$ORIGIN example.com.
ed._domainkey      TXT "v=DKIM1; k=ed25519; p=`+edP+`"
revoked._domainkey TXT "v=DKIM1; k=ed25519; p="
rsa._domainkey     TXT "v=DKIM1; k=rsa; p=`+rsaP+`"
two._domainkey     TXT "v=DKIM1; k=ed25519; p=`+edP+`"
two._domainkey     TXT "v=DKIM1; k=ed25519; p=`+edP+`"
sha1._domainkey    TXT "v=DKIM1; k=ed25519; h=sha1; p=`+edP+`"
svc._domainkey     TXT "v=DKIM1; k=ed25519; s=other; p=`+edP+`"
bad._domainkey     TXT "v=DKIM1; k=ed25519; p=AAAA"
v2._domainkey      TXT "v=DKIM2; k=ed25519; p=`+edP+`"
strict._domainkey  TXT "v=DKIM1; k=ed25519; t=s:y; p=`+edP+`"
`)
	signed := sign(t, testMsg, dkim.SignOptions{})
	if v := verifyOne(t, srv, signed); v.Result != dkim.ResultPass || v.Code != "" || v.Reason != "" || v.BodyLength != -1 ||
		strings.Join(v.HeaderKeys, ":") != "From:From:Subject:Date:To" || v.Canonicalization != "relaxed/relaxed" || v.Algorithm != "ed25519-sha256" {
		t.Errorf("pass: %+v", v)
	}
	if v := verifyOne(t, srv, signed); v.KeyBits != 256 || v.Testing {
		t.Errorf("key details: %+v", v)
	}
	withSel := func(sel string) string { return sign(t, testMsg, dkim.SignOptions{Selector: sel}) }
	strictSub := sign(t, testMsg, dkim.SignOptions{Selector: "strict", Identifier: "joe@mail.example.com"})
	strictSame := sign(t, testMsg, dkim.SignOptions{Selector: "strict", Identifier: "joe@example.com"})
	if v := verifyOne(t, srv, strictSame); v.Result != dkim.ResultPass || !v.Testing {
		t.Errorf("t=s with i= in d=: %+v", v)
	}
	if _, err := dkim.SignatureHeader([]byte(testMsg), dkim.SignOptions{Domain: "example.com", Selector: "ed", Signer: rfc8463Key(t), Identifier: "joe@example.org"}); err == nil {
		t.Error("identifier outside the domain accepted")
	}
	replace := func(s, old, new string) string {
		if !strings.Contains(s, old) {
			t.Fatalf("%q not in %q", old, s)
		}
		return strings.Replace(s, old, new, 1)
	}
	for _, tc := range []struct {
		name, msg, result, code string
	}{
		{"body changed", replace(signed, "Hi.", "Hi!"), dkim.ResultFail, dkim.CodeBodyHashMismatch},
		{"header changed", replace(signed, "Subject: dinner", "Subject: lunch"), dkim.ResultFail, dkim.CodeSignatureMismatch},
		{"From added", replace(signed, "To: ", "From: evil@example.org\r\nTo: "), dkim.ResultFail, dkim.CodeSignatureMismatch},
		{"unsigned header added", replace(signed, "To: ", "X-Extra: fine\r\nTo: "), dkim.ResultPass, ""},
		{"t=s with i= in a subdomain", strictSub, dkim.ResultFail, dkim.CodeIdentityMismatch},
		{"key not found", withSel("nokey"), dkim.ResultPermError, dkim.CodeKeyNotFound},
		{"key revoked", withSel("revoked"), dkim.ResultPermError, dkim.CodeKeyRevoked},
		{"several records", withSel("two"), dkim.ResultPermError, dkim.CodeSeveralRecords},
		{"key type mismatch", withSel("rsa"), dkim.ResultPermError, dkim.CodeKeyTypeMismatch},
		{"h= excludes sha256", withSel("sha1"), dkim.ResultPermError, dkim.CodeHashRestricted},
		{"s= excludes email", withSel("svc"), dkim.ResultPermError, dkim.CodeServiceRestricted},
		{"key does not decode", withSel("bad"), dkim.ResultPermError, dkim.CodeKeyDecode},
		{"key version", withSel("v2"), dkim.ResultPermError, dkim.CodeBadVersion},
		{"expired", sign(t, testMsg, dkim.SignOptions{Expiration: time.Hour, Now: func() time.Time { return time.Now().Add(-2 * time.Hour) }}), dkim.ResultPermError, dkim.CodeSignatureExpired},
		{"l= used", replace(signed, "DKIM-Signature: ", "DKIM-Signature: l=3; "), dkim.ResultNeutral, dkim.CodeBodyLength},
		{"rsa-sha1", replace(withSel("rsa"), "a=ed25519-sha256", "a=rsa-sha1"), dkim.ResultPermError, dkim.CodeWeakHash},
		{"From not signed", replace(signed, "h=From:From:", "h="), dkim.ResultPermError, dkim.CodeFromNotSigned},
		{"i= outside d=", replace(signed, "DKIM-Signature: ", "DKIM-Signature: i=@example.org; "), dkim.ResultPermError, dkim.CodeIdentityMismatch},
		{"duplicate tag", replace(signed, "DKIM-Signature: ", "DKIM-Signature: d=example.com; "), dkim.ResultPermError, dkim.CodeMalformedSignature},
		{"v=2", replace(signed, "v=1;", "v=2;"), dkim.ResultPermError, dkim.CodeMalformedSignature},
		{"missing bh=", replace(signed, "bh=", "xh="), dkim.ResultPermError, dkim.CodeMalformedSignature},
	} {
		v := verifyOne(t, srv, tc.msg)
		if v.Result != tc.result || v.Code != tc.code || (tc.result != dkim.ResultPass && v.Reason == "") {
			t.Errorf("%s: %s/%s (%s), want %s/%s", tc.name, v.Result, v.Code, v.Reason, tc.result, tc.code)
		}
	}
	// l= is reported with its value; x= with its time.
	if v := verifyOne(t, srv, replace(signed, "DKIM-Signature: ", "DKIM-Signature: l=3; ")); v.BodyLength != 3 || !strings.Contains(v.Reason, "l=3") {
		t.Errorf("l=: %+v", v)
	}

	// DNS failures are temperror.
	srv.Set("ed._domainkey.example.com", dns.TypeTXT, dnstest.ServFail)
	if v := verifyOne(t, srv, signed); v.Result != dkim.ResultTempError || v.Code != dkim.CodeKeyUnavailable {
		t.Errorf("servfail: %+v", v)
	}
}

func TestVerifyManySignatures(t *testing.T) {
	srv, r := serve(t, "ed._domainkey.example.com. TXT \"v=DKIM1; k=ed25519; p="+edP+"\"\n")
	_ = srv
	msg := testMsg
	for i := 0; i < dkim.MaxSignatures+2; i++ {
		msg = sign(t, msg, dkim.SignOptions{})
	}
	vs, err := dkim.Verify(context.Background(), r, strings.NewReader(msg))
	if err != nil || len(vs) != dkim.MaxSignatures+2 {
		t.Fatalf("%d %v", len(vs), err)
	}
	for i, v := range vs {
		want := dkim.ResultPass
		if i >= dkim.MaxSignatures {
			want = dkim.ResultNeutral
		}
		if v.Result != want {
			t.Errorf("signature %d: %s (%s), want %s", i, v.Result, v.Reason, want)
		}
	}
}

func TestVerifyNoSignatureAndBadInput(t *testing.T) {
	_, r := serve(t, "")
	vs, err := dkim.Verify(context.Background(), r, strings.NewReader(testMsg))
	if err != nil || len(vs) != 0 {
		t.Errorf("unsigned: %+v %v", vs, err)
	}
	if _, err := dkim.Verify(context.Background(), r, strings.NewReader("")); err == nil {
		t.Error("empty message: no error")
	}
	// A malformed DKIM-Signature is a permerror, not an error for the message.
	vs, err = dkim.Verify(context.Background(), r, strings.NewReader("DKIM-Signature: v=1; 9=x\r\n"+testMsg))
	if err != nil || len(vs) != 1 || vs[0].Code != dkim.CodeMalformedSignature {
		t.Errorf("malformed: %+v %v", vs, err)
	}
}

func TestSignHeaders(t *testing.T) {
	msg := "Received: a\r\nFrom: joe@example.com\r\nTo: a@example.net\r\nTo: b@example.net\r\nX-Other: y\r\nSubject: s\r\n\r\nbody\r\n"
	sig, err := dkim.SignatureHeader([]byte(msg), dkim.SignOptions{Domain: "example.com", Selector: "ed", Signer: rfc8463Key(t)})
	if err != nil {
		t.Fatal(err)
	}
	tags, err := dkim.ParseTagList(strings.TrimPrefix(sig, "DKIM-Signature:"))
	if err != nil {
		t.Fatal(err)
	}
	h, _ := tags.Get("h")
	if got := strings.Join(dkim.SplitList(h), ":"); got != "From:From:Subject:To:To" {
		t.Errorf("h=%s, want From oversigned and both To fields", got)
	}
	if c, _ := tags.Get("c"); c != "relaxed/relaxed" {
		t.Errorf("c=%s", c)
	}
	if _, ok := tags.Get("x"); ok {
		t.Error("x= without Expiration")
	}
	now := time.Unix(1700000000, 0)
	sig, err = dkim.SignatureHeader([]byte(msg), dkim.SignOptions{Domain: "example.com", Selector: "ed", Signer: rfc8463Key(t),
		Headers: []string{"from", "subject"}, HeaderCanon: "simple", BodyCanon: "relaxed", Expiration: time.Hour, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"h=from:subject", "c=simple/relaxed", fmt.Sprintf("x=%d", now.Add(time.Hour).Unix())} {
		if !strings.Contains(sig, want) {
			t.Errorf("missing %s in %s", want, sig)
		}
	}
	for _, tc := range []struct {
		msg  string
		o    dkim.SignOptions
		want string
	}{
		{"Subject: x\r\n\r\nbody\r\n", dkim.SignOptions{}, "no From"},
		{msg, dkim.SignOptions{Headers: []string{"Subject"}}, "must include From"},
		{msg, dkim.SignOptions{Headers: []string{"From", "Bad Name"}}, "invalid header field name"},
		{msg, dkim.SignOptions{HeaderCanon: "nofws"}, "unknown canonicalization"},
		{"From: a@example.com", dkim.SignOptions{}, "does not end in CRLF"},
	} {
		o := tc.o
		o.Domain, o.Selector, o.Signer = "example.com", "ed", rfc8463Key(t)
		if _, err := dkim.SignatureHeader([]byte(tc.msg), o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q %+v: err %v, want %q", tc.msg, tc.o, err, tc.want)
		}
	}
}

// TestSignHeaderOnly: a message with no body and no blank line (as SMTP
// DATA may deliver) gets a signature that verifies with the field prepended.
func TestSignHeaderOnly(t *testing.T) {
	_, r := serve(t, "ed._domainkey.example.com. TXT \"v=DKIM1; k=ed25519; p="+edP+"\"\n")
	for _, c := range []string{dkim.Simple, dkim.Relaxed} {
		msg := "From: joe@example.com\r\nSubject: header only\r\n"
		sig, err := dkim.SignatureHeader([]byte(msg), dkim.SignOptions{Domain: "example.com", Selector: "ed", Signer: rfc8463Key(t), HeaderCanon: c, BodyCanon: c})
		if err != nil {
			t.Fatal(err)
		}
		vs, err := dkim.Verify(context.Background(), r, strings.NewReader(sig+msg))
		if err != nil || len(vs) != 1 || vs[0].Result != dkim.ResultPass {
			t.Errorf("%s: %+v %v", c, vs, err)
		}
	}
}

// TestObsoleteHeaderSyntax: RFC 5322 §4.5 obsolete "Name :" fields sign
// and verify (relaxed canonicalization removes the space, RFC 6376 §3.4.2).
func TestObsoleteHeaderSyntax(t *testing.T) {
	_, r := serve(t, "ed._domainkey.example.com. TXT \"v=DKIM1; k=ed25519; p="+edP+"\"\n")
	msg := "From : joe@example.com\r\nSubject :  spaced\r\n\r\nHi.\r\n"
	for _, c := range []string{dkim.Simple, dkim.Relaxed} {
		signed := sign(t, msg, dkim.SignOptions{HeaderCanon: c, BodyCanon: c})
		vs, err := dkim.Verify(context.Background(), r, strings.NewReader(signed))
		if err != nil || len(vs) != 1 || vs[0].Result != dkim.ResultPass {
			t.Errorf("%s: %+v %v", c, vs, err)
		}
	}
}

func TestNormalize(t *testing.T) {
	for _, tc := range []struct {
		in, out string
		changed bool
	}{
		{"a\r\nb\r\n", "a\r\nb\r\n", false},
		{"a\nb\n", "a\r\nb\r\n", true},
		{"a\r\nb\n", "a\r\nb\r\n", true},
		{"\n", "\r\n", true},
	} {
		out, changed := dkim.ToCRLF([]byte(tc.in))
		if string(out) != tc.out || changed != tc.changed {
			t.Errorf("ToCRLF(%q) = %q %v", tc.in, out, changed)
		}
	}
	if out, _ := dkim.Normalize([]byte("From: a\nSubject: b")); string(out) != "From: a\r\nSubject: b\r\n\r\n" {
		t.Errorf("Normalize without body: %q", out)
	}
	if out, _ := dkim.Normalize([]byte("From: a\r\n\r\n")); string(out) != "From: a\r\n\r\n" {
		t.Errorf("Normalize empty body: %q", out)
	}
}

func TestParseCanon(t *testing.T) {
	for in, want := range map[string]string{"": "relaxed/relaxed", "simple": "simple/simple", "relaxed/simple": "relaxed/simple", "Simple/Relaxed": "simple/relaxed", "nofws": "!", "relaxed/x": "!"} {
		h, b, err := dkim.ParseCanon(in)
		if (err != nil) != (want == "!") || (err == nil && h+"/"+b != want) {
			t.Errorf("ParseCanon(%q) = %s/%s %v", in, h, b, err)
		}
	}
}

// FuzzVerify: any message, however malformed, gives one Verification per
// DKIM-Signature field or an error, never a panic. Keys come from a real
// loopback DNS server.
func FuzzVerify(f *testing.F) {
	srv, err := dnstest.New("ed._domainkey.example.com. TXT \"v=DKIM1; k=ed25519; p=" + edP + "\"\n")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(srv.Close)
	r := clientFor(f, srv)
	var signed bytes.Buffer
	dkim.Sign(&signed, strings.NewReader(testMsg), dkim.SignOptions{Domain: "example.com", Selector: "ed", Signer: ed25519FromSeed(f, "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=")})
	for _, s := range []string{signed.String(), testMsg, "", "\r\n", "DKIM-Signature:\r\n\r\n", "DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=ed; h=from; bh=; b=\r\nFrom: a\r\n\r\n",
		"DKIM-Signature: v=1; l=99999999999999999999; x=-1; t=abc\r\n\r\n", "From: a\n\tcontinued\nDKIM-Signature: v=1;\n b=\n\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		vs, err := dkim.Verify(context.Background(), r, bytes.NewReader(msg))
		if err != nil {
			return
		}
		for _, v := range vs {
			switch v.Result {
			case dkim.ResultPass, dkim.ResultFail, dkim.ResultNeutral, dkim.ResultTempError, dkim.ResultPermError:
			default:
				t.Fatalf("result %q", v.Result)
			}
			if (v.Result == dkim.ResultPass) != (v.Code == "") {
				t.Fatalf("result %s with code %q", v.Result, v.Code)
			}
		}
	})
}

func TestMessageFindings(t *testing.T) {
	pass := dkim.Verification{Result: dkim.ResultPass, Algorithm: "rsa-sha256", KeyBits: 1024, Testing: true}
	fail := dkim.Verification{Result: dkim.ResultFail, Code: dkim.CodeBodyHashMismatch, Reason: "x"}
	temp := dkim.Verification{Result: dkim.ResultTempError, Code: dkim.CodeKeyUnavailable, Reason: "x"}
	for _, tc := range []struct {
		name       string
		vs         []dkim.Verification
		want       string
		incomplete bool
	}{
		{"none", nil, "dkim.no-signature:error", false},
		{"fail", []dkim.Verification{fail}, "dkim.body-hash-mismatch:error", false},
		{"fail beside pass", []dkim.Verification{fail, pass}, "dkim.body-hash-mismatch:warning,dkim.testing:info,dkim.key-short:warning", false},
		{"temperror only", []dkim.Verification{temp}, "dkim.key-unavailable:warning", true},
		{"temperror and fail", []dkim.Verification{temp, fail}, "dkim.key-unavailable:warning,dkim.body-hash-mismatch:error", false},
	} {
		fs, inc := dkim.MessageFindings(tc.vs)
		if got := codes(fs); got != tc.want || inc != tc.incomplete {
			t.Errorf("%s: %q incomplete=%v, want %q %v", tc.name, got, inc, tc.want, tc.incomplete)
		}
	}
}

func TestSignOptionsValidate(t *testing.T) {
	ok := dkim.SignOptions{Domain: "example.com", Selector: "s1", Signer: rfc8463Key(t)}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*dkim.SignOptions){
		"no domain":      func(o *dkim.SignOptions) { o.Domain = "" },
		"bad selector":   func(o *dkim.SignOptions) { o.Selector = "a b" },
		"no key":         func(o *dkim.SignOptions) { o.Signer = nil },
		"bad canon":      func(o *dkim.SignOptions) { o.BodyCanon = "nofws" },
		"headers":        func(o *dkim.SignOptions) { o.Headers = []string{"To"} },
		"identifier":     func(o *dkim.SignOptions) { o.Identifier = "a@example.org" },
		"neg expiration": func(o *dkim.SignOptions) { o.Expiration = -time.Second },
	} {
		o := ok
		mut(&o)
		if err := o.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
