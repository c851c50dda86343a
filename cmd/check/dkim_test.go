package check_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/relayctl/relayctl/cmd/check"
	"github.com/relayctl/relayctl/cmd/cmdtest"
	"github.com/relayctl/relayctl/pkg/dnstest"
)

type keygenResult struct {
	KeyFile  string `json:"key_file"`
	ZoneLine string `json:"zone_line"`
}

// keygen runs `relayctl dkim keygen` and returns the key file and zone line.
func keygen(t *testing.T, dir, domain, sel string, extra ...string) keygenResult {
	t.Helper()
	res := cmdtest.Run(t, append([]string{"dkim", "keygen", "--json", "--domain", domain, "--selector", sel, "--out", dir}, extra...)...)
	if res.Code != 0 {
		t.Fatalf("keygen: exit %d %s", res.Code, res.Stderr)
	}
	var kr keygenResult
	if err := json.Unmarshal(res.Envelope(t).Result, &kr); err != nil {
		t.Fatal(err)
	}
	return kr
}

// TestDKIMEndToEnd: keys made by keygen, published in a served zone from
// the zone-file lines keygen printed, pass the record check and sign
// messages that `check dkim --message` verifies.
func TestDKIMEndToEnd(t *testing.T) {
	dir := t.TempDir()
	rsa := keygen(t, dir, "example.com", "s2026")
	ed := keygen(t, dir, "example.com", "ed1", "--algo", "ed25519")
	srv := dnstest.Start(t, rsa.ZoneLine+"\n"+ed.ZoneLine+"\n")

	res := cmdtest.Run(t, "check", "dkim", "example.com", "--selector", "s2026,ed1", "--resolver", srv.Addr())
	if res.Code != 0 || !strings.Contains(res.Stdout, "RSA 2048-bit key") || !strings.Contains(res.Stdout, "Ed25519 key") {
		t.Fatalf("check dkim: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	for _, line := range strings.Split(res.Stdout, "\n") {
		if len([]rune(line)) > 80 && !strings.HasPrefix(line, "    ") {
			t.Errorf("line over 80 columns: %q", line)
		}
	}

	msgFile := filepath.Join(dir, "msg.eml")
	os.WriteFile(msgFile, []byte("From: Joe <joe@example.com>\nTo: suzie@example.net\nSubject: dinner\n\nHi.\n"), 0o644)
	signed := filepath.Join(dir, "signed.eml")
	for _, k := range []keygenResult{rsa, ed} {
		sel := "s2026"
		if k == ed {
			sel = "ed1"
		}
		res = cmdtest.Run(t, "dkim", "sign", "--key", k.KeyFile, "--domain", "example.com", "--selector", sel, msgFile)
		if res.Code != 0 || !strings.Contains(res.Stderr, "LF line endings") || !strings.HasPrefix(res.Stdout, "DKIM-Signature:") {
			t.Fatalf("sign: exit %d %s", res.Code, res.Stderr)
		}
		os.WriteFile(signed, []byte(res.Stdout), 0o644)
		res = cmdtest.Run(t, "check", "dkim", "--message", signed, "--resolver", srv.Addr(), "--json")
		env := res.Envelope(t)
		if res.Code != 0 || env.Status != "pass" {
			t.Fatalf("%s: verify exit %d: %s", sel, res.Code, res.Stdout)
		}
		var mr check.DKIMMessageResult
		json.Unmarshal(env.Result, &mr)
		if mr.Passed != 1 || mr.Signatures[0].Selector != sel {
			t.Errorf("%s: %+v", sel, mr)
		}
	}

	// Tamper with the body: exit 1, body hash mismatch.
	data, _ := os.ReadFile(signed)
	os.WriteFile(signed, []byte(strings.Replace(string(data), "Hi.", "Hi!", 1)), 0o644)
	res = cmdtest.Run(t, "check", "dkim", "--message", signed, "--resolver", srv.Addr())
	if res.Code != 1 || !strings.Contains(res.Stdout, "body hash mismatch") {
		t.Errorf("tampered: exit %d\n%s", res.Code, res.Stdout)
	}

	// Key revoked afterwards: permerror, exit 1.
	srv.Remove("ed1._domainkey.example.com", dns.TypeTXT)
	srv.AddZone(`ed1._domainkey.example.com. IN TXT "v=DKIM1; k=ed25519; p="`)
	os.WriteFile(signed, data, 0o644)
	res = cmdtest.Run(t, "check", "dkim", "--message", signed, "--resolver", srv.Addr(), "--json")
	if env := res.Envelope(t); res.Code != 1 || !env.Has("dkim.key-revoked") {
		t.Errorf("revoked: exit %d\n%s", res.Code, res.Stdout)
	}

	// DNS failure: temperror, exit 3.
	srv.Set("ed1._domainkey.example.com", dns.TypeTXT, dnstest.ServFail)
	res = cmdtest.Run(t, "check", "dkim", "--message", signed, "--resolver", srv.Addr(), "--json")
	if env := res.Envelope(t); res.Code != 3 || env.Status != "error" || !env.Has("dkim.key-unavailable") {
		t.Errorf("servfail: exit %d\n%s", res.Code, res.Stdout)
	}
}

func TestCheckDKIMRecords(t *testing.T) {
	long := strings.Repeat("A", 300)
	// A 2048-bit key record split across two TXT records, and the same
	// value cut at 255 bytes.
	rec := "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA8ukdE0Qcen1dFpCZkHwCAvAb66egK0T7W+94NQxCDPWlUYE0WwNLXcc479vYKrNmia4spobV7sB5UZNZvsCEpjQgLqRLZN64cyN0ati0AwKHMAfSATxT7usatY/djkCtSgy8Qj+HZPvw3rqKIcYi0d7nX9zPJxyFW4UXRx+WXKjT6rI4uBJWX9ziA/hgsGFVr52Sd0b6io731STst4F/tf06iDQA9h/1R2+fSG7PNzKNCn/oT2gIpdwUb9kU5A2D7Io2NxYd9gcqKOz+drD6wweTryodR6ERhtB//l50v9q1C6abTuCDEdjSnZUhEKxQsJvYZS5hr1ZOMUNv8sXoOQIDAQAB"
	srv := dnstest.Start(t, `
splitrec._domainkey.example.org. TXT "`+rec[:200]+`"
splitrec._domainkey.example.org. TXT "`+rec[200:]+`"
trunc._domainkey.example.org.    TXT "`+rec[:255]+`"
`+`
$ORIGIN example.org.
ok._domainkey        TXT "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
delegated._domainkey CNAME ok._domainkey.provider.test.
dangling._domainkey  CNAME gone._domainkey.provider.test.
two._domainkey       TXT "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
two._domainkey       TXT "v=DKIM1; k=ed25519; p=W9cyD98GYgXO7Ge3a7q4G4pTb4KXwkaohBv0YUZKo7g="
revoked._domainkey   TXT "v=DKIM1; p="
testing._domainkey   TXT "v=DKIM1; t=y; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
badv._domainkey      TXT "v=DKIM2; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
dsa._domainkey       TXT "v=DKIM1; k=dsa; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
quoted._domainkey    TXT "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQ\"HOg7hcvPapiMlrwIaaPcHURo="
garbage._domainkey   TXT "v=DKIM1; k=rsa; p=`+long+`"
`+"$ORIGIN provider.test.\nok._domainkey TXT \"v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\"\n")
	for _, tc := range []struct {
		sel  string
		code int
		want string
	}{
		{"ok", 0, ""},
		{"delegated", 0, "dkim.cname"},
		{"dangling", 1, "dkim.record-missing"},
		{"missing", 1, "dkim.record-missing"},
		{"two", 1, "dkim.several-records"},
		{"revoked", 1, "dkim.key-revoked"},
		{"testing", 0, "dkim.testing"},
		{"badv", 1, "dkim.bad-version"},
		{"dsa", 1, "dkim.unknown-key-type"},
		{"quoted", 1, "dkim.split-quotes"},
		{"garbage", 1, "dkim.key-decode"},
		{"splitrec", 1, "dkim.split-records"},
		{"trunc", 1, "dkim.truncated"},
	} {
		res := cmdtest.Run(t, "check", "dkim", "example.org", "--selector", tc.sel, "--resolver", srv.Addr(), "--json")
		env := res.Envelope(t)
		if res.Code != tc.code || (tc.want != "" && !env.Has(tc.want)) || (tc.want == "" && len(env.Findings) != 0) {
			t.Errorf("%s: exit %d, want %d with %q: %+v", tc.sel, res.Code, tc.code, tc.want, env.Findings)
		}
	}
	// --strict fails on the testing warning; --ignore drops it.
	if res := cmdtest.Run(t, "check", "dkim", "example.org", "-s", "testing", "--resolver", srv.Addr(), "--strict"); res.Code != 1 {
		t.Errorf("--strict testing: exit %d", res.Code)
	}
	if res := cmdtest.Run(t, "check", "dkim", "example.org", "-s", "testing", "--resolver", srv.Addr(), "--strict", "--ignore", "dkim.testing"); res.Code != 0 {
		t.Errorf("--ignore: exit %d %s", res.Code, res.Stdout)
	}
	// Timeout on the selector: could not complete.
	srv.Set("ok._domainkey.example.org", dns.TypeTXT, dnstest.Timeout)
	if res := cmdtest.Run(t, "check", "dkim", "example.org", "-s", "ok", "--resolver", srv.Addr(), "--timeout", "200ms"); res.Code != 3 {
		t.Errorf("timeout: exit %d %s", res.Code, res.Stdout)
	}
}

func TestCheckDKIMDiscovery(t *testing.T) {
	srv := dnstest.Start(t, `
selector1._domainkey.example.net. TXT "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
google._domainkey.example.net.    TXT "v=DKIM1; k=ed25519; p=W9cyD98GYgXO7Ge3a7q4G4pTb4KXwkaohBv0YUZKo7g="
example.org. TXT "v=spf1 -all"
`)
	res := cmdtest.Run(t, "check", "dkim", "example.net", "--resolver", srv.Addr(), "--json")
	env := res.Envelope(t)
	var r check.DKIMSelectorsResult
	json.Unmarshal(env.Result, &r)
	if res.Code != 0 || !r.Discovered || len(r.Selectors) != 2 || r.Selectors[0].Selector != "selector1" || r.Selectors[1].Selector != "google" {
		t.Errorf("discovery: exit %d %s", res.Code, res.Stdout)
	}
	res = cmdtest.Run(t, "check", "dkim", "example.org", "--resolver", srv.Addr())
	if res.Code != 0 || !strings.Contains(res.Stdout, "dkim.no-selector-found") {
		t.Errorf("nothing found: exit %d\n%s", res.Code, res.Stdout)
	}
}

func TestCheckDKIMUsage(t *testing.T) {
	for _, args := range [][]string{
		{"check", "dkim"},
		{"check", "dkim", "example.com", "--message", "x.eml"},
		{"check", "dkim", "--message", "x.eml", "--selector", "s1"},
		{"check", "dkim", "--message", "/nonexistent.eml"},
		{"check", "dkim", "bad..domain", "-s", "s1"},
		{"check", "dkim", "example.com", "-s", "bad selector"},
		{"check", "dkim", "example.com", "-s", "s1._domainkey.example.com"},
	} {
		res := cmdtest.Run(t, append(args, "--resolver", "127.0.0.1:1")...)
		if res.Code != 2 || strings.Count(strings.TrimSpace(res.Stderr), "\n") != 0 {
			t.Errorf("%v: exit %d %q", args, res.Code, res.Stderr)
		}
	}
}

func TestCheckDKIMMessageEdgeCases(t *testing.T) {
	srv := dnstest.Start(t, "")
	res := cmdtest.RunStdin(t, strings.NewReader("From: a@example.com\nSubject: unsigned\n\nhi\n"), "check", "dkim", "--message", "-", "--resolver", srv.Addr(), "--json")
	env := res.Envelope(t)
	if res.Code != 1 || !env.Has("dkim.no-signature") || !strings.Contains(res.Stderr, "verifying it as CRLF") {
		t.Errorf("unsigned LF message: exit %d %s %s", res.Code, res.Stdout, res.Stderr)
	}
	var mr check.DKIMMessageResult
	json.Unmarshal(env.Result, &mr)
	if !mr.CRLFConverted || mr.Signatures == nil || mr.File != "stdin" {
		t.Errorf("result: %+v", mr)
	}
	res = cmdtest.RunStdin(t, strings.NewReader(""), "check", "dkim", "--message", "-", "--resolver", srv.Addr())
	if res.Code != 2 {
		t.Errorf("empty message: exit %d %s", res.Code, res.Stderr)
	}
}

// dkimpyVerify is a dkimpy verifier that fetches keys from host:port.
const dkimpyVerify = `
import sys, dkim, dns.resolver
host, port = sys.argv[1].rsplit(":", 1)
res = dns.resolver.Resolver(configure=False)
res.nameservers = [host]; res.port = int(port)
def dnsfunc(name, timeout=5):
    try:
        return b"".join(next(iter(res.resolve(name.decode(), "TXT"))).strings)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return None
msg = open(sys.argv[2], "rb").read()
print("pass" if dkim.DKIM(msg).verify(dnsfunc=dnsfunc) else "fail")
`

// TestKeygenSignVerifiedByDkimpy is the definition of done, end to
// end through the commands: keys made by `dkim keygen`, published from its
// zone lines in a served zone, sign with `dkim sign`, and dkimpy verifies.
func TestKeygenSignVerifiedByDkimpy(t *testing.T) {
	py := ""
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(p, "-c", "import dkim, dns.resolver, nacl").Run() == nil {
			py = p
			break
		}
	}
	if py == "" {
		t.Skip("dkimpy is not installed (Debian: python3-dkim, installed by .ci/deps); skipping")
	}
	dir := t.TempDir()
	rsa := keygen(t, dir, "example.com", "s2026")
	ed := keygen(t, dir, "example.com", "ed1", "--algo", "ed25519")
	srv := dnstest.Start(t, rsa.ZoneLine+"\n"+ed.ZoneLine+"\n")
	script := filepath.Join(dir, "verify.py")
	os.WriteFile(script, []byte(dkimpyVerify), 0o644)
	msgFile := filepath.Join(dir, "msg.eml")
	os.WriteFile(msgFile, []byte("From: Joe <joe@example.com>\nTo: suzie@example.net\nSubject: dinner\n\nHi.\n"), 0o644)
	for sel, k := range map[string]keygenResult{"s2026": rsa, "ed1": ed} {
		res := cmdtest.Run(t, "dkim", "sign", "--key", k.KeyFile, "--domain", "example.com", "--selector", sel, msgFile)
		if res.Code != 0 {
			t.Fatalf("%s: sign: %s", sel, res.Stderr)
		}
		signed := filepath.Join(dir, sel+".eml")
		os.WriteFile(signed, []byte(res.Stdout), 0o644)
		out, err := exec.Command(py, script, srv.Addr(), signed).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "pass" {
			t.Errorf("%s: dkimpy: %v %s", sel, err, out)
		}
	}
}
