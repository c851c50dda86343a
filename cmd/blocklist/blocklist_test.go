package blocklist_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relayctl/relayctl/cmd/cmdtest"
	"github.com/relayctl/relayctl/pkg/dnstest"
)

const lists = `
2.0.0.127.zen.spamhaus.org.   A   127.0.0.2
2.0.0.127.zen.spamhaus.org.   TXT "https://www.spamhaus.org/sbl/query/SBL2"
2.0.0.127.b.barracudacentral.org. A 127.0.0.2
2.0.0.127.b.barracudacentral.org. TXT "Client host blocked using Barracuda Reputation"
2.0.0.127.bl.spamcop.net.     A   127.255.255.254
99.2.0.192.zen.spamhaus.org.  A   127.255.255.254
dbltest.com.dbl.spamhaus.org. A   127.0.1.2
test.uribl.com.multi.uribl.com. A 127.0.0.14
*.everything.example.         A   127.0.0.2
`

type out struct {
	Zones    []map[string]any `json:"zones"`
	SelfTest []struct {
		Zone, Status string
	} `json:"selftest"`
	Queries []struct {
		Target  string   `json:"target"`
		Zone    string   `json:"zone"`
		Listed  bool     `json:"listed"`
		Codes   []string `json:"codes"`
		Meaning string   `json:"meaning"`
		Reason  string   `json:"reason"`
		Error   string   `json:"error"`
	} `json:"queries"`
}

func decode(t *testing.T, r cmdtest.Result) (cmdtest.Envelope, out) {
	t.Helper()
	e := r.Envelope(t)
	var o out
	if err := json.Unmarshal(e.Result, &o); err != nil {
		t.Fatal(err)
	}
	return e, o
}

// The "done means": SBL with its TXT reason, Barracuda's listing,
// and a 127.255.255.254 answer as an error.
func TestDoneMeans(t *testing.T) {
	srv := dnstest.Start(t, lists)
	r := cmdtest.Run(t, "blocklist", "127.0.0.2", "--resolver", srv.Addr())
	if r.Code != 1 {
		t.Fatalf("exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	for _, want := range []string{"Spamhaus ZEN", "LISTED", "SBL:", "reason: https://www.spamhaus.org/sbl/query/SBL2",
		"Barracuda BRBL", "Client host blocked", "SpamCop", "ERROR", "127.255.255.254", "blocklist.refused"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.Stdout)
		}
	}
	for _, line := range strings.Split(r.Stdout, "\n") {
		if len([]rune(line)) > 80 && !strings.Contains(line, "http") {
			t.Errorf("line wider than 80 columns: %q", line)
		}
	}
	if r.Stderr != "" {
		t.Errorf("stderr %q (no progress bar when stderr is not a terminal)", r.Stderr)
	}

	r = cmdtest.Run(t, "blocklist", "127.0.0.2", "--resolver", srv.Addr(), "--json")
	e, o := decode(t, r)
	if r.Code != 1 || e.Status != "fail" || !e.Has("blocklist.listed") || !e.Has("blocklist.refused") || e.Command != "blocklist" || e.Target != "127.0.0.2" {
		t.Fatalf("exit %d envelope %+v", r.Code, e)
	}
	if len(o.Queries) != 3 {
		t.Fatalf("%+v", o.Queries)
	}
	for _, q := range o.Queries {
		switch q.Zone {
		case "zen.spamhaus.org":
			if !q.Listed || q.Codes[0] != "127.0.0.2" || !strings.HasPrefix(q.Meaning, "SBL") || q.Reason == "" || q.Error != "" {
				t.Errorf("%+v", q)
			}
		case "b.barracudacentral.org":
			if !q.Listed || q.Reason != "Client host blocked using Barracuda Reputation" {
				t.Errorf("%+v", q)
			}
		case "bl.spamcop.net":
			if q.Listed || q.Error == "" || q.Codes[0] != "127.255.255.254" {
				t.Errorf("%+v", q)
			}
		}
	}
}

func TestExitCodes(t *testing.T) {
	srv := dnstest.Start(t, lists)
	// Clean everywhere: 0.
	r := cmdtest.Run(t, "blocklist", "192.0.2.1", "--resolver", srv.Addr())
	if r.Code != 0 || !strings.Contains(r.Stdout, "PASS") {
		t.Errorf("clean: exit %d\n%s", r.Code, r.Stdout)
	}
	// Nothing listed but a list refused: 3.
	r = cmdtest.Run(t, "blocklist", "192.0.2.99", "--resolver", srv.Addr(), "--json")
	if e, _ := decode(t, r); r.Code != 3 || e.Status != "error" || !e.Has("blocklist.refused") {
		t.Errorf("refused: exit %d %+v", r.Code, e)
	}
	// A list that times out: 3, the others still answer.
	srv.Set("1.2.0.192.bl.spamcop.net", 0, dnstest.Timeout)
	r = cmdtest.Run(t, "blocklist", "192.0.2.1", "--resolver", srv.Addr(), "--timeout", "200ms", "--json")
	e, o := decode(t, r)
	if r.Code != 3 || !e.Has("blocklist.query-failed") || len(o.Queries) != 3 {
		t.Errorf("timeout: exit %d %+v", r.Code, e)
	}
}

func TestBadTargets(t *testing.T) {
	for _, args := range [][]string{
		{"999.1.1.1"}, {"1.2.3"}, {""}, {"10.0.0.0/8"}, {"2001:db8::/64"}, {},
		{"192.0.2.1", "--zones", "bad zone"}, {"192.0.2.1", "--dqs-key", "no.dots"}, {"192.0.2.1", "--concurrency", "0"}, {"192.0.2.1", "--add-zones", "zrd.dq.spamhaus.net"},
	} {
		r := cmdtest.Run(t, append([]string{"blocklist", "--resolver", "127.0.0.1:1"}, args...)...)
		if r.Code != 2 || strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 || !strings.HasPrefix(r.Stderr, "relayctl: ") {
			t.Errorf("%q: exit %d stderr %q", args, r.Code, r.Stderr)
		}
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "ips.txt")
	os.WriteFile(file, []byte("192.0.2.1\n\n# comment\n1.2.3\n"), 0o600)
	r := cmdtest.Run(t, "blocklist", "--resolver", "127.0.0.1:1", "--file", file)
	if r.Code != 2 || !strings.Contains(r.Stderr, "ips.txt:4: ") {
		t.Errorf("file: exit %d stderr %q", r.Code, r.Stderr)
	}
}

func TestFileAndZonesConfig(t *testing.T) {
	srv := dnstest.Start(t, lists)
	r := cmdtest.RunStdin(t, strings.NewReader("# senders\n127.0.0.2\n\n192.0.2.1  # relay\n"),
		"blocklist", "--file", "-", "--zones", "zen.spamhaus.org", "--resolver", srv.Addr(), "--json")
	_, o := decode(t, r)
	if r.Code != 1 || len(o.Queries) != 2 || len(o.Zones) != 1 {
		t.Errorf("exit %d %+v", r.Code, o)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfg, []byte("blocklist:\n  zones: [zen.spamhaus.org]\n  add-zones:\n    - rbl.example.net\n  concurrency: 4\n"), 0o600)
	r = cmdtest.Run(t, "--config", cfg, "blocklist", "192.0.2.1", "--resolver", srv.Addr(), "--json")
	if _, o := decode(t, r); r.Code != 0 || len(o.Zones) != 2 || o.Zones[1]["zone"] != "rbl.example.net" {
		t.Errorf("config: exit %d %+v", r.Code, o.Zones)
	}
	t.Setenv("RELAYCTL_BLOCKLIST_ZONES", "bl.spamcop.net,b.barracudacentral.org")
	r = cmdtest.Run(t, "blocklist", "192.0.2.1", "--resolver", srv.Addr(), "--json")
	if _, o := decode(t, r); len(o.Zones) != 2 || o.Zones[0]["zone"] != "bl.spamcop.net" {
		t.Errorf("env: %+v", o.Zones)
	}
	r = cmdtest.Run(t, "blocklist", "192.0.2.1", "--resolver", srv.Addr(), "--json", "--dqs-key", "abcdefghijklmnopqrstuvwxyz", "--zones", "zen.spamhaus.org")
	if _, o := decode(t, r); o.Zones[0]["zone"] != "abcdefghijklmnopqrstuvwxyz.zen.dq.spamhaus.net" {
		t.Errorf("dqs: %+v", o.Zones)
	}
}

func TestSelfTestCommand(t *testing.T) {
	srv := dnstest.Start(t, lists)
	r := cmdtest.Run(t, "blocklist", "--selftest", "--resolver", srv.Addr(), "--zones", "b.barracudacentral.org,dbl.spamhaus.org,multi.uribl.com", "--json")
	if e, _ := decode(t, r); r.Code != 0 || e.Status != "pass" {
		t.Errorf("healthy lists: exit %d %+v\n%s", r.Code, e, r.Stdout)
	}
	// Alone, a dead or list-everything list fails the run.
	r = cmdtest.Run(t, "blocklist", "--selftest", "--resolver", srv.Addr(), "--zones", "b.barracudacentral.org,dead.example,everything.example,bl.spamcop.net")
	if r.Code != 1 || !strings.Contains(r.Stdout, "DEAD") || !strings.Contains(r.Stdout, "LISTS-EVERYTHING") || !strings.Contains(r.Stdout, "REFUSED") {
		t.Errorf("exit %d\n%s", r.Code, r.Stdout)
	}
	// With targets, the failing lists are left out and the run is incomplete.
	r = cmdtest.Run(t, "blocklist", "192.0.2.1", "--selftest", "--resolver", srv.Addr(), "--zones", "b.barracudacentral.org,everything.example", "--json")
	e, o := decode(t, r)
	if r.Code != 3 || !e.Has("blocklist.selftest-lists-everything") || len(o.Queries) != 1 || o.Queries[0].Zone != "b.barracudacentral.org" {
		t.Errorf("exit %d %+v %+v", r.Code, e, o)
	}
}

func TestIPv6WithoutIPv6Lists(t *testing.T) {
	srv := dnstest.Start(t, lists)
	r := cmdtest.Run(t, "blocklist", "2001:db8::1", "--zones", "b.barracudacentral.org", "--resolver", srv.Addr(), "--json")
	e, o := decode(t, r)
	if r.Code != 0 || e.Status != "warn" || !e.Has("blocklist.ipv6-unchecked") || len(o.Queries) != 0 {
		t.Errorf("exit %d %+v", r.Code, e)
	}
	r = cmdtest.Run(t, "blocklist", "2001:db8::1", "--zones", "b.barracudacentral.org", "--resolver", srv.Addr())
	if !strings.Contains(r.Stdout, "no list in the set answers IPv6") {
		t.Errorf("%s", r.Stdout)
	}
}

func TestDQSRefusedHint(t *testing.T) {
	srv := dnstest.Start(t, lists)
	srv.Set("1.2.0.192.abcdefghijklmnopqrstuvwxyz.zen.dq.spamhaus.net", 0, dnstest.Refused)
	r := cmdtest.Run(t, "blocklist", "192.0.2.1", "--zones", "zen.spamhaus.org", "--dqs-key", "abcdefghijklmnopqrstuvwxyz", "--resolver", srv.Addr(), "--json")
	e, _ := decode(t, r)
	if r.Code != 3 || !e.Has("blocklist.query-failed") || !strings.Contains(e.Findings[0].Message, "key is not enabled") {
		t.Errorf("exit %d %+v", r.Code, e.Findings)
	}
}

// A resolver that cannot be reached: every list is an error, summed up in
// one finding per list, and the run is incomplete (3), not clean.
func TestUnreachableResolver(t *testing.T) {
	r := cmdtest.Run(t, "blocklist", "192.0.2.1", "192.0.2.2", "--resolver", "127.0.0.1:1", "--timeout", "200ms", "--json")
	e, o := decode(t, r)
	if r.Code != 3 || e.Status != "error" || len(o.Queries) != 6 {
		t.Fatalf("exit %d %+v", r.Code, e)
	}
	n := 0
	for _, f := range e.Findings {
		if f.Code == "blocklist.query-failed" {
			n++
			if !strings.Contains(f.Message, "2 of 2 queries") {
				t.Errorf("%s", f.Message)
			}
		}
	}
	for _, q := range o.Queries {
		if q.Listed || q.Error == "" {
			t.Errorf("%+v", q)
		}
	}
	if n != 3 {
		t.Errorf("%d query-failed findings, want one per list: %+v", n, e.Findings)
	}
}
