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

const cmdZone = `
$ORIGIN example.test.
@        MX  10 mx
@        TXT "v=spf1 ip4:192.0.2.0/24 -all"
mx       A   192.0.2.25
_dmarc   TXT "v=DMARC1; p=reject; rua=mailto:dmarc@example.test"
$ORIGIN weak.test.
_dmarc   TXT "v=DMARC1; p=none"
25.2.0.192.in-addr.arpa. PTR mx.example.test.
`

func TestCheckDMARCCommand(t *testing.T) {
	srv := dnstest.Start(t, cmdZone)
	r := cmdtest.Run(t, "check", "dmarc", "example.test", "--resolver", srv.Addr(), "--json")
	if r.Code != 0 {
		t.Fatalf("exit %d: %s %s", r.Code, r.Stdout, r.Stderr)
	}
	e := r.Envelope(t)
	var res struct {
		Domain      string `json:"domain"`
		OrgDomain   string `json:"org_domain"`
		Disposition struct {
			Applied string `json:"applied"`
		} `json:"disposition"`
		Record struct {
			Domain string `json:"domain"`
		} `json:"record"`
	}
	if err := json.Unmarshal(e.Result, &res); err != nil {
		t.Fatal(err)
	}
	if e.Command != "check dmarc" || e.Status != "pass" || res.Domain != "example.test" || res.Disposition.Applied != "reject" || res.Record.Domain != "example.test" {
		t.Errorf("envelope %+v result %s", e, e.Result)
	}

	r = cmdtest.Run(t, "check", "dmarc", "weak.test", "--resolver", srv.Addr())
	if r.Code != 0 || !strings.Contains(r.Stdout, "dmarc.policy-none") || !strings.Contains(r.Stdout, "check dmarc weak.test: WARN") {
		t.Errorf("weak: exit %d\n%s", r.Code, r.Stdout)
	}
	for _, line := range strings.Split(r.Stdout, "\n") {
		if len([]rune(line)) > 80 {
			t.Errorf("line wider than 80 columns: %q", line)
		}
	}
	if strings.Contains(r.Stdout, "\x1b[") {
		t.Error("colour codes when not a terminal")
	}
	if r = cmdtest.Run(t, "check", "dmarc", "weak.test", "--resolver", srv.Addr(), "--strict"); r.Code != 1 {
		t.Errorf("--strict on warnings: exit %d", r.Code)
	}
	if r = cmdtest.Run(t, "check", "dmarc", "weak.test", "--resolver", srv.Addr(), "--strict", "--ignore", "dmarc.policy-none,dmarc.no-rua"); r.Code != 0 {
		t.Errorf("--ignore: exit %d %s", r.Code, r.Stdout)
	}
	if r = cmdtest.Run(t, "check", "dmarc", "missing.test", "--resolver", srv.Addr()); r.Code != 1 || !strings.Contains(r.Stdout, "dmarc.no-record") {
		t.Errorf("missing: exit %d %s", r.Code, r.Stdout)
	}
	srv.Set("_dmarc.example.test", 0, dnstest.ServFail)
	if r = cmdtest.Run(t, "check", "dmarc", "example.test", "--resolver", srv.Addr(), "--json"); r.Code != 3 || r.Envelope(t).Status != "error" {
		t.Errorf("servfail: exit %d %s", r.Code, r.Stdout)
	}
}

func TestCheckUsage(t *testing.T) {
	for _, args := range [][]string{
		{"check", "dmarc"},
		{"check", "dmarc", "not a domain"},
		{"check", "dmarc", "a@b.test"},
		{"check", "mx", "a", "b"},
		{"check", "ptr", "not-an-ip"},
		{"check", "ptr", "192.0.2.1", "--helo", "bad name"},
	} {
		r := cmdtest.Run(t, append(args, "--resolver", "127.0.0.1:9")...)
		if r.Code != 2 || strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q", args, r.Code, r.Stderr)
		}
	}
}

func TestCheckMXCommand(t *testing.T) {
	srv := dnstest.Start(t, cmdZone)
	r := cmdtest.Run(t, "check", "mx", "example.test", "--resolver", srv.Addr())
	if r.Code != 0 || !strings.Contains(r.Stdout, "mx.example.test") || !strings.Contains(r.Stdout, "192.0.2.25") {
		t.Errorf("exit %d\n%s", r.Code, r.Stdout)
	}
	r = cmdtest.Run(t, "check", "mx", "weak.test", "--resolver", srv.Addr(), "--json")
	if e := r.Envelope(t); r.Code != 1 || !e.Has("mx.none") {
		t.Errorf("exit %d %s", r.Code, r.Stdout)
	}
}

func TestCheckPTRCommand(t *testing.T) {
	srv := dnstest.Start(t, cmdZone)
	r := cmdtest.Run(t, "check", "ptr", "192.0.2.25", "--helo", "mx.example.test", "--resolver", srv.Addr())
	if r.Code != 0 || !strings.Contains(r.Stdout, "confirmed") {
		t.Errorf("exit %d\n%s", r.Code, r.Stdout)
	}
	r = cmdtest.Run(t, "check", "ptr", "192.0.2.26", "--resolver", srv.Addr(), "--json")
	if e := r.Envelope(t); r.Code != 1 || !e.Has("ptr.none") || e.Target != "192.0.2.26" {
		t.Errorf("exit %d %s", r.Code, r.Stdout)
	}
}

func TestCheckDMARCMessageCommand(t *testing.T) {
	key, err := dkim.GenerateKey(dkim.AlgoEd25519, 0)
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := dkim.NewRecord("sel", "example.test", key.Public())
	srv := dnstest.Start(t, cmdZone+rec.ZoneLine+"\n")
	msg := []byte("From: Shop <shop@example.test>\r\nTo: a@receiver.test\r\nSubject: hi\r\n\r\nHello.\r\n")
	var signed bytes.Buffer
	if err := dkim.Sign(&signed, bytes.NewReader(msg), dkim.SignOptions{Domain: "example.test", Selector: "sel", Signer: key}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good.eml")
	os.WriteFile(good, signed.Bytes(), 0o600)
	unsigned := filepath.Join(dir, "unsigned.eml")
	os.WriteFile(unsigned, msg, 0o600)

	r := cmdtest.Run(t, "check", "dmarc", "--message", good, "--resolver", srv.Addr(), "--json")
	if r.Code != 0 {
		t.Fatalf("exit %d %s %s", r.Code, r.Stdout, r.Stderr)
	}
	var res struct {
		FromDomain string `json:"from_domain"`
		SPF        struct {
			Result  string `json:"result"`
			Domain  string `json:"domain"`
			Aligned bool   `json:"aligned"`
		} `json:"spf"`
		DKIM []struct {
			Domain, Selector, Result string
			Aligned                  bool
		} `json:"dkim"`
		DMARC       string `json:"dmarc"`
		Policy      string `json:"policy"`
		Disposition string `json:"disposition"`
		AR          string `json:"authentication_results"`
	}
	if err := json.Unmarshal(r.Envelope(t).Result, &res); err != nil {
		t.Fatal(err)
	}
	if res.FromDomain != "example.test" || res.DMARC != "pass" || res.Policy != "reject" || res.Disposition != "none" ||
		len(res.DKIM) != 1 || !res.DKIM[0].Aligned || res.DKIM[0].Result != "pass" || !strings.Contains(res.AR, "dmarc=pass") {
		t.Errorf("result %+v", res)
	}

	// Unsigned, from an IP outside the SPF record: fail, reject, exit 1.
	r = cmdtest.Run(t, "check", "dmarc", "--message", unsigned, "--ip", "198.51.100.1", "--mail-from", "b@example.test", "--resolver", srv.Addr())
	if r.Code != 1 || !strings.Contains(r.Stdout, "FAIL") || !strings.Contains(r.Stdout, "dmarc.fail") || !strings.Contains(r.Stdout, "Authentication-Results: relayctl; spf=fail") {
		t.Errorf("exit %d\n%s", r.Code, r.Stdout)
	}
	// The same from the authorised relay passes on SPF alone; stdin works.
	r = cmdtest.RunStdin(t, bytes.NewReader(msg), "check", "dmarc", "--message", "-", "--ip", "192.0.2.25", "--mail-from", "b@example.test", "--resolver", srv.Addr())
	if r.Code != 0 || !strings.Contains(r.Stdout, "aligned spf") {
		t.Errorf("stdin: exit %d\n%s", r.Code, r.Stdout)
	}
	for _, args := range [][]string{
		{"--message", filepath.Join(dir, "missing.eml")},
		{"--message", good, "example.test"},
		{"--message", good, "--ip", "nope"},
		{"--message", good, "--mail-from", "b@example.test"},
		{"--message", good, "--ip", "192.0.2.1", "--mail-from", "no-at-sign"},
		{"example.test", "--ip", "192.0.2.1"},
	} {
		r := cmdtest.Run(t, append([]string{"check", "dmarc", "--resolver", srv.Addr()}, args...)...)
		if r.Code != 2 || strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 {
			t.Errorf("%v: exit %d stderr %q", args, r.Code, r.Stderr)
		}
	}
}
