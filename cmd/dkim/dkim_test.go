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

func TestSignCommand(t *testing.T) {
	dir := t.TempDir()
	kr, res := keygen(t, "--domain", "example.com", "--selector", "ed", "--algo", "ed25519", "--out", dir)
	if res.Code != 0 {
		t.Fatal(res.Stderr)
	}
	msg := "From: joe@example.com\r\nTo: a@example.net\r\nSubject: hi\r\n\r\nbody\r\n"
	base := []string{"dkim", "sign", "--key", kr.KeyFile, "--domain", "example.com", "--selector", "ed"}

	// stdin, CRLF: no note, signature first, message unchanged after it.
	res = cmdtest.RunStdin(t, strings.NewReader(msg), base...)
	if res.Code != 0 || res.Stderr != "" || !strings.HasPrefix(res.Stdout, "DKIM-Signature: ") || !strings.HasSuffix(res.Stdout, "\r\n"+msg) {
		t.Fatalf("stdin: exit %d %q\n%s", res.Code, res.Stderr, res.Stdout)
	}
	for _, want := range []string{"c=relaxed/relaxed", "h=From:From:Subject:To", "d=example.com", "s=ed", "a=ed25519-sha256"} {
		if !strings.Contains(strings.ReplaceAll(res.Stdout, "\r\n ", ""), want) {
			t.Errorf("signature lacks %s:\n%s", want, res.Stdout)
		}
	}
	// Flags.
	res = cmdtest.RunStdin(t, strings.NewReader(msg), append(base, "--canon", "simple", "--headers", "From,Subject", "--expire", "1h", "--identifier", "joe@example.com", "-")...)
	sig := strings.ReplaceAll(res.Stdout, "\r\n ", "")
	for _, want := range []string{"c=simple/simple", "h=From:Subject", "x=", "i=joe@example.com"} {
		if !strings.Contains(sig, want) {
			t.Errorf("flags: signature lacks %s:\n%s", want, res.Stdout)
		}
	}
	// --json carries the signed message.
	res = cmdtest.RunStdin(t, strings.NewReader(strings.ReplaceAll(msg, "\r\n", "\n")), append(base, "--json")...)
	var sr struct {
		Signature     string `json:"signature"`
		Message       string `json:"message"`
		CRLFConverted bool   `json:"crlf_converted"`
	}
	env := res.Envelope(t)
	json.Unmarshal(env.Result, &sr)
	if res.Code != 0 || !sr.CRLFConverted || sr.Message != sr.Signature+msg || !env.Has("dkim.crlf-converted") || !strings.Contains(res.Stderr, "LF line endings") {
		t.Errorf("--json: exit %d %+v", res.Code, sr)
	}
	// Bad input: exit 2, one line.
	file := filepath.Join(dir, "m.eml")
	os.WriteFile(file, []byte(msg), 0o644)
	noFrom := filepath.Join(dir, "nofrom.eml")
	os.WriteFile(noFrom, []byte("Subject: x\r\n\r\nbody\r\n"), 0o644)
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not a key"), 0o600)
	for _, args := range [][]string{
		{"dkim", "sign", "--domain", "example.com", "--selector", "ed", file},
		{"dkim", "sign", "--key", garbage, "--domain", "example.com", "--selector", "ed", file},
		{"dkim", "sign", "--key", filepath.Join(dir, "missing.pem"), "--domain", "example.com", "--selector", "ed", file},
		append(append([]string{}, base...), noFrom),
		append(append([]string{}, base...), filepath.Join(dir, "missing.eml")),
		append(append([]string{}, base...), "--canon", "nofws", file),
		append(append([]string{}, base...), "--headers", "Subject,To", file),
		append(append([]string{}, base...), "--identifier", "joe@example.org", file),
		append(append([]string{}, base...), file, "extra-arg"),
	} {
		res := cmdtest.Run(t, args...)
		if res.Code != 2 || strings.Count(strings.TrimSpace(res.Stderr), "\n") != 0 || res.Stdout != "" {
			t.Errorf("%v: exit %d stderr %q stdout %q", args[3:], res.Code, res.Stderr, res.Stdout)
		}
	}
	res = cmdtest.RunStdin(t, strings.NewReader(""), base...)
	if res.Code != 2 {
		t.Errorf("empty stdin: exit %d", res.Code)
	}
}
