package dkim_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relayctl/relayctl/cmd/cmdtest"
)

type keygenResult struct {
	KeyFile  string   `json:"key_file"`
	Name     string   `json:"name"`
	Value    string   `json:"value"`
	Strings  []string `json:"strings"`
	ZoneLine string   `json:"zone_line"`
	Bits     int      `json:"bits"`
}

func keygen(t *testing.T, args ...string) (keygenResult, cmdtest.Result) {
	t.Helper()
	res := cmdtest.Run(t, append([]string{"dkim", "keygen", "--json"}, args...)...)
	var kr keygenResult
	if res.Code == 0 {
		if err := json.Unmarshal(res.Envelope(t).Result, &kr); err != nil {
			t.Fatal(err)
		}
	}
	return kr, res
}

func TestKeygenWritesKeyAndRecord(t *testing.T) {
	dir := t.TempDir()
	kr, res := keygen(t, "--domain", "Example.COM.", "--selector", "s1", "--out", dir)
	if res.Code != 0 {
		t.Fatalf("exit %d: %s", res.Code, res.Stderr)
	}
	fi, err := os.Stat(kr.KeyFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file %s: %v mode %v", kr.KeyFile, err, fi.Mode())
	}
	if kr.Name != "s1._domainkey.example.com" || !strings.HasPrefix(kr.Value, "v=DKIM1; k=rsa; p=MIIB") || kr.Bits != 2048 {
		t.Errorf("record: %+v", kr)
	}
	if len(kr.Strings) != 2 || len(kr.Strings[0]) != 255 || strings.Join(kr.Strings, "") != kr.Value {
		t.Errorf("split: %q", kr.Strings)
	}
	if !strings.HasPrefix(kr.ZoneLine, `s1._domainkey.example.com. IN TXT "v=DKIM1; k=rsa; `) || strings.Count(kr.ZoneLine, `"`) != 4 {
		t.Errorf("zone line: %s", kr.ZoneLine)
	}
	before, _ := os.ReadFile(kr.KeyFile)

	// Never overwrite without --force.
	_, res = keygen(t, "--domain", "example.com", "--selector", "s1", "--out", dir)
	if res.Code != 2 || !strings.Contains(res.Stderr, "refusing to overwrite") {
		t.Fatalf("second keygen: exit %d, %s", res.Code, res.Stderr)
	}
	if after, _ := os.ReadFile(kr.KeyFile); string(after) != string(before) {
		t.Fatal("key file changed without --force")
	}
	kr2, res := keygen(t, "--domain", "example.com", "--selector", "s1", "--out", dir, "--force", "--algo", "ed25519")
	if res.Code != 0 {
		t.Fatalf("--force: exit %d %s", res.Code, res.Stderr)
	}
	after, _ := os.ReadFile(kr2.KeyFile)
	fi, _ = os.Stat(kr2.KeyFile)
	if string(after) == string(before) || fi.Mode().Perm() != 0o600 {
		t.Errorf("--force did not replace the key with a 0600 file (mode %v)", fi.Mode())
	}
	if !strings.HasPrefix(kr2.Value, "v=DKIM1; k=ed25519; p=") || len(kr2.Value) != len("v=DKIM1; k=ed25519; p=")+44 {
		t.Errorf("ed25519 record: %s", kr2.Value)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

func TestKeygenBits(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		warn bool
	}{
		{[]string{"--bits", "512"}, 2, false},
		{[]string{"--bits", "1023"}, 2, false},
		{[]string{"--bits", "1024"}, 0, true},
		{[]string{"--bits", "3072"}, 0, false},
		{[]string{"--algo", "ed25519", "--bits", "2048"}, 2, false},
		{[]string{"--algo", "dsa"}, 2, false},
	} {
		sel := "b" + strings.Join(tc.args, "")
		sel = strings.NewReplacer("-", "", " ", "").Replace(sel)
		res := cmdtest.Run(t, append([]string{"dkim", "keygen", "--json", "--domain", "example.com", "--selector", sel, "--out", dir}, tc.args...)...)
		if res.Code != tc.code {
			t.Errorf("%v: exit %d, want %d (%s)", tc.args, res.Code, tc.code, res.Stderr)
			continue
		}
		env := res.Envelope(t)
		if got := env.Has("dkim.key-short"); got != tc.warn {
			t.Errorf("%v: key-short warning %v, want %v", tc.args, got, tc.warn)
		}
		if tc.code == 2 {
			if _, err := os.Stat(filepath.Join(dir, sel+".example.com.pem")); err == nil {
				t.Errorf("%v: refused but wrote a key", tc.args)
			}
		}
	}
	// --strict turns the 1024-bit warning into a failure.
	res := cmdtest.Run(t, "dkim", "keygen", "--strict", "--domain", "example.com", "--selector", "strict", "--bits", "1024", "--out", dir)
	if res.Code != 1 || !strings.Contains(res.Stdout, "dkim.key-short") {
		t.Errorf("--strict 1024: exit %d\n%s", res.Code, res.Stdout)
	}
}

func TestKeygenBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"--domain", "example.com"},
		{"--selector", "s1"},
		{"--domain", "exa mple.com", "--selector", "s1"},
		{"--domain", "example.com", "--selector", "s 1"},
		{"--domain", "example.com", "--selector", "s1", "--out", "/nonexistent/dir"},
	} {
		res := cmdtest.Run(t, append([]string{"dkim", "keygen"}, args...)...)
		if res.Code != 2 || strings.Count(strings.TrimSpace(res.Stderr), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q", args, res.Code, res.Stderr)
		}
	}
}
