package check_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relayctl/relayctl/cmd/cmdtest"
	"github.com/relayctl/relayctl/pkg/dkim"
	"github.com/relayctl/relayctl/pkg/dnstest"
)

// allZone serves a healthy domain (example.test) and broken variants.
// The DKIM keys are appended by the test.
const allZone = `
$ORIGIN example.test.
@        MX  10 mx
@        TXT "v=spf1 ip4:192.0.2.0/24 -all"
mx       A   192.0.2.25
_dmarc   TXT "v=DMARC1; p=reject; rua=mailto:dmarc@example.test"
$ORIGIN badspf.test.
@        MX  10 mx.example.test.
@        TXT "v=spf1 include:nowhere.invalid.test -all"
_dmarc   TXT "v=DMARC1; p=reject; rua=mailto:dmarc@badspf.test"
$ORIGIN nodmarc.test.
@        MX  10 mx.example.test.
@        TXT "v=spf1 ip4:192.0.2.0/24 -all"
$ORIGIN esp.test.
@        TXT "v=spf1 -all"
25.2.0.192.in-addr.arpa. PTR mx.example.test.
`

type allEnvelope struct {
	Status string `json:"status"`
	Result struct {
		Status string `json:"status"`
		Checks []struct {
			Check    string `json:"check"`
			Status   string `json:"status"`
			Findings []struct {
				Code string `json:"code"`
			} `json:"findings"`
		} `json:"checks"`
	} `json:"result"`
}

func (e allEnvelope) check(name string) (status string, codes []string) {
	for _, c := range e.Result.Checks {
		if c.Check == name {
			for _, f := range c.Findings {
				codes = append(codes, f.Code)
			}
			return c.Status, codes
		}
	}
	return "", nil
}

func runAll(t *testing.T, args ...string) (cmdtest.Result, allEnvelope) {
	t.Helper()
	r := cmdtest.Run(t, append([]string{"check", "all", "--json"}, args...)...)
	var e allEnvelope
	if err := json.Unmarshal([]byte(r.Stdout), &e); err != nil {
		t.Fatalf("%v: %v\n%s\n%s", args, err, r.Stdout, r.Stderr)
	}
	return r, e
}

func TestCheckAllDoneMeans(t *testing.T) {
	key, _ := dkim.GenerateKey(dkim.AlgoEd25519, 0)
	espKey, _ := dkim.GenerateKey(dkim.AlgoEd25519, 0)
	rec, _ := dkim.NewRecord("s1", "example.test", key.Public())
	espRec, _ := dkim.NewRecord("esp", "esp.test", espKey.Public())
	srv := dnstest.Start(t, allZone+rec.ZoneLine+"\n"+espRec.ZoneLine+"\n")
	res := []string{"--resolver", srv.Addr()}

	// Healthy: every check passes, exit 0.
	r, e := runAll(t, append([]string{"example.test", "--selector", "s1", "--ip", "192.0.2.25", "--helo", "mx.example.test"}, res...)...)
	if r.Code != 0 || e.Status != "pass" || e.Result.Status != "pass" || len(e.Result.Checks) != 6 {
		t.Errorf("healthy: exit %d status %s\n%s", r.Code, e.Status, r.Stdout)
	}
	for _, name := range []string{"spf", "dkim", "dmarc", "mx", "ptr", "blocklist"} {
		if st, codes := e.check(name); st != "pass" {
			t.Errorf("healthy: %s is %s %v", name, st, codes)
		}
	}

	// Broken SPF: the spf section fails, the rest does not, exit 1.
	r, e = runAll(t, append([]string{"badspf.test", "--selector", "s1"}, res...)...)
	if st, codes := e.check("spf"); r.Code != 1 || e.Status != "fail" || st != "fail" {
		t.Errorf("broken spf: exit %d spf %s %v\n%s", r.Code, st, codes, r.Stdout)
	}
	if st, _ := e.check("mx"); st != "pass" {
		t.Errorf("broken spf: mx %s", st)
	}

	// Missing DMARC: exit 1 with dmarc.no-record.
	r, e = runAll(t, append([]string{"nodmarc.test"}, res...)...)
	if st, codes := e.check("dmarc"); r.Code != 1 || st != "fail" || !strings.Contains(strings.Join(codes, " "), "dmarc.no-record") {
		t.Errorf("missing dmarc: exit %d dmarc %s %v", r.Code, st, codes)
	}

	// An unaligned DKIM signature (d=esp.test on mail From example.test):
	// the sample message fails DMARC, exit 1.
	msg := []byte("From: shop@example.test\r\nTo: a@receiver.test\r\nSubject: x\r\n\r\nHi.\r\n")
	var signed bytes.Buffer
	if err := dkim.Sign(&signed, bytes.NewReader(msg), dkim.SignOptions{Domain: "esp.test", Selector: "esp", Signer: espKey}); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "sample.eml")
	os.WriteFile(file, signed.Bytes(), 0o600)
	r, e = runAll(t, append([]string{"example.test", "--selector", "s1", "--message", file}, res...)...)
	if st, codes := e.check("message"); r.Code != 1 || st != "fail" || !strings.Contains(strings.Join(codes, " "), "dmarc.dkim-unaligned") {
		t.Errorf("unaligned dkim: exit %d message %s %v\n%s", r.Code, st, codes, r.Stdout)
	}
	if st, _ := e.check("dkim"); st != "pass" {
		t.Errorf("unaligned dkim: dkim section %s", st)
	}
	// Signed by the domain itself it passes.
	signed.Reset()
	dkim.Sign(&signed, bytes.NewReader(msg), dkim.SignOptions{Domain: "example.test", Selector: "s1", Signer: key})
	os.WriteFile(file, signed.Bytes(), 0o600)
	if r, e = runAll(t, append([]string{"example.test", "--selector", "s1", "--message", file}, res...)...); r.Code != 0 {
		t.Errorf("aligned dkim: exit %d\n%s", r.Code, r.Stdout)
	}

	// A check that cannot complete (SERVFAIL) and none failing: exit 3.
	srv.Set("mx.example.test", 0, dnstest.ServFail)
	r, e = runAll(t, append([]string{"example.test", "--selector", "s1"}, res...)...)
	if st, _ := e.check("mx"); r.Code != 3 || e.Status != "error" || st != "error" {
		t.Errorf("servfail: exit %d status %s mx %s", r.Code, e.Status, st)
	}
}

func TestCheckAllStrictIgnoreAndHuman(t *testing.T) {
	srv := dnstest.Start(t, allZone)
	// No DKIM selector found → a warning: exit 0, 1 with --strict, 0 again when ignored.
	args := []string{"check", "all", "example.test", "--resolver", srv.Addr()}
	r := cmdtest.Run(t, args...)
	if r.Code != 0 {
		t.Errorf("exit %d\n%s", r.Code, r.Stdout)
	}
	for _, want := range []string{"SPF  PASS", "DKIM  WARN", "DMARC  PASS", "MX  PASS", "check all example.test: WARN"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("human output lacks %q:\n%s", want, r.Stdout)
		}
	}
	for _, line := range strings.Split(r.Stdout, "\n") {
		if len([]rune(line)) > 80 {
			t.Errorf("line wider than 80 columns: %q", line)
		}
	}
	if r := cmdtest.Run(t, append(args, "--strict")...); r.Code != 1 {
		t.Errorf("--strict: exit %d", r.Code)
	}
	if r := cmdtest.Run(t, append(args, "--strict", "--ignore", "dkim.no-selector-found,mx.single-host")...); r.Code != 0 {
		t.Errorf("--strict --ignore: exit %d\n%s", r.Code, r.Stdout)
	}
	for _, bad := range [][]string{{"--ip", "x"}, {"--selector", "bad selector"}, {"--message", "/nonexistent.eml"}, {"--mail-from", "a@example.test"}} {
		if r := cmdtest.Run(t, append(args, bad...)...); r.Code != 2 {
			t.Errorf("%v: exit %d", bad, r.Code)
		}
	}
}

func TestCheckAllIgnoreFromEnvironment(t *testing.T) {
	srv := dnstest.Start(t, allZone)
	t.Setenv("RELAYCTL_IGNORE", "dkim.no-selector-found,mx.single-host")
	if r := cmdtest.Run(t, "check", "all", "example.test", "--resolver", srv.Addr(), "--strict"); r.Code != 0 {
		t.Errorf("RELAYCTL_IGNORE: exit %d\n%s", r.Code, r.Stdout)
	}
	// A flag replaces the environment.
	if r := cmdtest.Run(t, "check", "all", "example.test", "--resolver", srv.Addr(), "--strict", "--ignore", "mx.single-host"); r.Code != 1 {
		t.Errorf("--ignore over RELAYCTL_IGNORE: exit %d", r.Code)
	}
}
