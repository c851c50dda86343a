package check_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/relayctl/relayctl/cmd/cmdtest"
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
