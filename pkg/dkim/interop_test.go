package dkim_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relayctl/relayctl/pkg/dkim"
	"github.com/relayctl/relayctl/pkg/dkimpytest"
)

// Interoperability with independent implementations: dkimpy (Debian
// python3-dkim) and opendkim-tools. .ci/deps installs both; without them
// these tests skip and say why.

// oddMessages are the formats that must round-trip between implementations.
var oddMessages = map[string]string{
	"plain":             "From: Joe <joe@example.com>\r\nTo: suzie@example.net\r\nSubject: dinner\r\nDate: Fri, 11 Jul 2003 21:00:37 -0700\r\nMessage-ID: <1@example.com>\r\n\r\nHi.\r\n",
	"folded-headers":    "From: Joe <joe@example.com>\r\nTo: a@example.net,\r\n  b@example.net,\r\n\tc@example.net\r\nSubject: a very long subject line that goes on and on and on and on and on and on\r\n and continues on a second line\r\n\tand a third one with a tab\r\nReferences: <1@example.com>\r\n <2@example.com>\r\n <3@example.com>\r\n\r\nBody.\r\n",
	"lf-input":          "From: joe@example.com\nTo: suzie@example.net\nSubject: LF only\n\nline one\nline two\n",
	"trailing-blank":    "From: joe@example.com\r\nSubject: trailing blank lines\r\n\r\nHi.\r\n\r\n\r\n\r\n",
	"8bit-body":         "From: joe@example.com\r\nSubject: 8bit\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln \xe2\x80\x94 \xf0\x9f\x8d\xba\r\nLatin-1: caf\xe9\r\n",
	"duplicate-headers": "Received: from a by b\r\nReceived: from c by d\r\nFrom: joe@example.com\r\nTo: first@example.net\r\nTo: second@example.net\r\nReply-To: r1@example.com\r\nReply-To: r2@example.com\r\nSubject: duplicates\r\n\r\nHi.\r\n",
	"whitespace":        "From:   joe@example.com   \r\nSubject:\tspaced  \t out \r\nTo: x@example.net\r\n\r\n  leading and trailing  \t\r\n\ttabbed line\r\n\r\n",
	"empty-body":        "From: joe@example.com\r\nSubject: no body\r\n",
	"8bit-header":       "From: =?utf-8?q?J=C3=B6rg?= <joerg@example.com>\r\nSubject: Gr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln\r\nTo: J\xc3\xbcrgen <j@example.net>\r\n\r\nHi.\r\n",
	"long-unfolded":     "From: joe@example.com\r\nSubject: " + strings.Repeat("word ", 180) + "end\r\n\r\nHi.\r\n",
	"long-body-line":    "From: joe@example.com\r\nSubject: long line\r\n\r\n" + strings.Repeat("x", 990) + "\r\n",
}

type interopKeys struct {
	rsaKey        *rsa.PrivateKey
	edKey         ed25519.PrivateKey
	rsaPEM, edB64 string // files dkimpy reads: PKCS#1 PEM, base64 seed
	zone          string
}

func makeInteropKeys(t *testing.T, dir string) interopKeys {
	t.Helper()
	rk, err := dkim.GenerateKey(dkim.AlgoRSA, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, _ := dkim.GenerateKey(dkim.AlgoEd25519, 0)
	k := interopKeys{rsaKey: rk.(*rsa.PrivateKey), edKey: ek.(ed25519.PrivateKey)}
	k.rsaPEM = filepath.Join(dir, "rsa.pem")
	os.WriteFile(k.rsaPEM, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k.rsaKey)}), 0o600)
	k.edB64 = filepath.Join(dir, "ed.key")
	os.WriteFile(k.edB64, []byte(base64.StdEncoding.EncodeToString(k.edKey.Seed())), 0o600)
	rr, _ := dkim.NewRecord("rsa", "example.com", k.rsaKey.Public())
	er, _ := dkim.NewRecord("ed", "example.com", k.edKey.Public())
	k.zone = rr.ZoneLine + "\n" + er.ZoneLine + "\n"
	return k
}

// TestInteropDkimpy: relayctl-signed RSA and Ed25519 messages verify in
// dkimpy, and dkimpy-signed ones verify in relayctl, for every odd format
// and both canonicalizations.
func TestInteropDkimpy(t *testing.T) {
	py := dkimpytest.Python(t)
	dir := t.TempDir()
	keys := makeInteropKeys(t, dir)
	_, r := serve(t, keys.zone)
	host := r.Servers()[0]

	type item struct{ name, file string }
	var ours []item
	job := dkimpytest.Job{DNS: host}
	var theirs []item
	for name, msg := range oddMessages {
		in := filepath.Join(dir, name+".eml")
		crlf, _ := dkim.Normalize([]byte(msg))
		os.WriteFile(in, crlf, 0o644) // dkimpy signs the CRLF form
		for _, canon := range []string{"simple/simple", "relaxed/relaxed", "relaxed/simple"} {
			hc, bc, _ := dkim.ParseCanon(canon)
			for _, algo := range []string{"rsa", "ed"} {
				var signer crypto.Signer = keys.rsaKey
				keyFile, algoName := keys.rsaPEM, "rsa-sha256"
				if algo == "ed" {
					signer, keyFile, algoName = keys.edKey, keys.edB64, "ed25519-sha256"
				}
				tag := fmt.Sprintf("%s %s %s", name, canon, algo)
				var out bytes.Buffer
				o := dkim.SignOptions{Domain: "example.com", Selector: algo, Signer: signer, HeaderCanon: hc, BodyCanon: bc}
				if err := dkim.Sign(&out, strings.NewReader(msg), o); err != nil {
					t.Fatalf("%s: sign: %v", tag, err)
				}
				f := filepath.Join(dir, strings.NewReplacer(" ", "_", "/", "-").Replace(tag)+".ours.eml")
				os.WriteFile(f, out.Bytes(), 0o644)
				ours = append(ours, item{tag, f})
				job.Verify = append(job.Verify, f)

				tf := strings.TrimSuffix(f, ".ours.eml") + ".theirs.eml"
				job.Sign = append(job.Sign, dkimpytest.Sign{File: in, Key: keyFile, Domain: "example.com", Selector: algo, Algo: algoName, Canon: canon, Out: tf})
				theirs = append(theirs, item{tag, tf})
			}
		}
	}
	// Negative control: dkimpy must reject a tampered copy.
	tampered := filepath.Join(dir, "tampered.eml")
	data, _ := os.ReadFile(ours[0].file)
	os.WriteFile(tampered, append(data, "tampered\r\n"...), 0o644)
	job.Verify = append(job.Verify, tampered)

	res := dkimpytest.Run(t, py, job)
	if last := res.Verify[len(res.Verify)-1]; len(last) != 1 || last[0].OK {
		t.Errorf("dkimpy accepted a tampered message: %v", last)
	}
	for i, it := range ours {
		if len(res.Verify[i]) != 1 || !res.Verify[i][0].OK {
			t.Errorf("dkimpy does not verify relayctl's signature: %s %v", it.name, res.Verify[i])
		}
	}
	for _, it := range theirs {
		data, err := os.ReadFile(it.file)
		if err != nil {
			t.Fatalf("%s: %v", it.name, err)
		}
		vs, err := dkim.Verify(context.Background(), r, bytes.NewReader(data))
		if err != nil || len(vs) != 1 || vs[0].Result != dkim.ResultPass {
			t.Errorf("relayctl does not verify dkimpy's signature: %s: %+v %v", it.name, vs, err)
		}
		// The same file stored with LF line endings verifies too.
		lf := bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
		if vs, err := dkim.Verify(context.Background(), r, bytes.NewReader(lf)); err != nil || len(vs) != 1 || vs[0].Result != dkim.ResultPass {
			t.Errorf("LF copy of dkimpy's %s: %+v %v", it.name, vs, err)
		}
	}
	t.Logf("%d relayctl-signed messages verified by dkimpy, %d dkimpy-signed verified by relayctl", len(ours), len(theirs))
}

// TestInteropOpenDKIM uses opendkim-tools as the other side:
// opendkim-genkey's key and its zone file (served as written) work with
// relayctl's signer, checker and verifier, and dkimpy agrees. The message
// opendkim-testmsg signs uses rsa-sha1 (it offers no choice); relayctl must
// refuse it as RFC 8301 §3.1 requires, while reading every tag correctly.
// (opendkim-testmsg and opendkim-testkey verify only through the system
// resolver, so they cannot be pointed at the test DNS server.)
func TestInteropOpenDKIM(t *testing.T) {
	if _, err := exec.LookPath("opendkim-genkey"); err != nil {
		t.Skip("opendkim-tools is not installed (installed by .ci/deps); skipping")
	}
	dir := t.TempDir()
	cmd := exec.Command("opendkim-genkey", "-b", "2048", "-d", "example.com", "-s", "og", "-D", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("opendkim-genkey: %v\n%s", err, out)
	}
	zone, err := os.ReadFile(filepath.Join(dir, "og.txt"))
	if err != nil {
		t.Fatal(err)
	}
	// og as opendkim-genkey wrote it (h=sha256), and og1: the same key
	// without h=, so that opendkim-testmsg's rsa-sha1 is not excluded by
	// the record itself.
	og1 := strings.Replace(strings.Replace(string(zone), "og._domainkey", "og1._domainkey", 1), "h=sha256; ", "", 1)
	_, r := serve(t, "$ORIGIN example.com.\n"+string(zone)+og1)

	// The published record audits clean.
	sr, err := dkim.CheckSelector(context.Background(), r, "example.com", "og")
	if err != nil || !sr.Found || len(sr.Findings) != 0 || sr.Key.Bits != 2048 || len(sr.Strings[0]) < 2 {
		t.Fatalf("opendkim-genkey record: %+v %v", sr, err)
	}
	// Its private key (PKCS#8 PEM) signs in relayctl.
	key, err := dkim.LoadPrivateKey(filepath.Join(dir, "og.private"))
	if err != nil {
		t.Fatal(err)
	}
	var signed bytes.Buffer
	if err := dkim.Sign(&signed, strings.NewReader(oddMessages["folded-headers"]), dkim.SignOptions{Domain: "example.com", Selector: "og", Signer: key}); err != nil {
		t.Fatal(err)
	}
	if vs, err := dkim.Verify(context.Background(), r, bytes.NewReader(signed.Bytes())); err != nil || vs[0].Result != dkim.ResultPass {
		t.Errorf("relayctl verify: %+v %v", vs, err)
	}
	ours := filepath.Join(dir, "ours.eml")
	os.WriteFile(ours, signed.Bytes(), 0o644)

	if _, err := exec.LookPath("opendkim-testmsg"); err != nil {
		t.Skip("opendkim-testmsg missing")
	}
	msg := "Received: from client.example.com by mx.example.com; Fri, 11 Jul 2003 21:00:37 -0700\r\n" +
		"From: Joe <joe@example.com>\r\nTo: s@example.net\r\nSubject: hi\r\nDate: Fri, 11 Jul 2003 21:00:37 -0700\r\n" +
		"Message-ID: <1@example.com>\r\n\r\nHello.\r\n"
	testmsg := func(sel string) []byte {
		ts := exec.Command("opendkim-testmsg", "-C", "-d", "example.com", "-s", sel, "-k", filepath.Join(dir, "og.private"))
		ts.Stdin = strings.NewReader(msg)
		out, err := ts.Output()
		if err != nil {
			t.Fatalf("opendkim-testmsg: %v", err)
		}
		return out
	}
	// With og's h=sha256 the record itself excludes opendkim's rsa-sha1.
	vs, err := dkim.Verify(context.Background(), r, bytes.NewReader(testmsg("og")))
	if err != nil || len(vs) != 1 || vs[0].Code != dkim.CodeHashRestricted {
		t.Errorf("opendkim-testmsg with h=sha256 key: %+v %v", vs, err)
	}
	theirs := testmsg("og1")
	vs, err = dkim.Verify(context.Background(), r, bytes.NewReader(theirs))
	if err != nil || len(vs) != 1 {
		t.Fatalf("%+v %v", vs, err)
	}
	v := vs[0]
	if v.Algorithm != "rsa-sha1" || v.Result != dkim.ResultPermError || v.Code != dkim.CodeWeakHash || v.Selector != "og1" || v.Canonicalization != "relaxed/simple" {
		t.Errorf("opendkim-testmsg signature: %+v", v)
	}
	theirsFile := filepath.Join(dir, "theirs.eml")
	os.WriteFile(theirsFile, theirs, 0o644)

	// dkimpy as the referee: it verifies relayctl's signature with the
	// opendkim key, and confirms opendkim's rsa-sha1 signature is intact
	// (dkimpy still accepts sha1), so relayctl's refusal is policy.
	py := dkimpytest.Python(t)
	res := dkimpytest.Run(t, py, dkimpytest.Job{DNS: r.Servers()[0], Verify: []string{ours, theirsFile}})
	if !res.Verify[0][0].OK {
		t.Error("dkimpy does not verify relayctl's signature made with opendkim-genkey's key")
	}
	if !res.Verify[1][0].OK {
		t.Error("dkimpy does not verify opendkim-testmsg's signature")
	}
}

// TestInteropOpenDKIMTestkey: opendkim-testkey fetches a key published
// from relayctl keygen's zone line (through libunbound, pointed at the
// test DNS server with an unbound configuration file) and confirms it
// matches the private key keygen wrote.
func TestInteropOpenDKIMTestkey(t *testing.T) {
	if _, err := exec.LookPath("opendkim-testkey"); err != nil {
		t.Skip("opendkim-tools is not installed (installed by .ci/deps); skipping")
	}
	dir := t.TempDir()
	key, err := dkim.GenerateKey(dkim.AlgoRSA, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, _ := dkim.MarshalPrivateKey(key)
	keyFile := filepath.Join(dir, "s1.example.com.pem")
	if err := dkim.WriteKeyFile(keyFile, pemBytes, false); err != nil {
		t.Fatal(err)
	}
	rec, _ := dkim.NewRecord("s1", "example.com", key.Public())
	other, _ := dkim.GenerateKey(dkim.AlgoRSA, 2048)
	wrong, _ := dkim.NewRecord("wrong", "example.com", other.Public())
	_, r := serve(t, rec.ZoneLine+"\n"+wrong.ZoneLine+"\n")
	host, port, _ := strings.Cut(r.Servers()[0], ":")

	unboundConf := filepath.Join(dir, "unbound.conf")
	os.WriteFile(unboundConf, []byte(fmt.Sprintf("server:\n  do-not-query-localhost: no\n  module-config: \"iterator\"\nforward-zone:\n  name: \".\"\n  forward-addr: %s@%s\n", host, port)), 0o644)
	conf := filepath.Join(dir, "opendkim.conf")
	os.WriteFile(conf, []byte("ResolverConfiguration "+unboundConf+"\n"), 0o644)

	testkey := func(sel string) (string, error) {
		out, err := exec.Command("opendkim-testkey", "-x", conf, "-d", "example.com", "-s", sel, "-k", keyFile, "-vvv").CombinedOutput()
		return string(out), err
	}
	out, err := testkey("s1")
	if err != nil || !strings.Contains(out, "key OK") {
		t.Fatalf("opendkim-testkey on keygen's record: %v\n%s", err, out)
	}
	out, err = testkey("wrong")
	if err == nil || !strings.Contains(out, "keys do not match") {
		t.Errorf("opendkim-testkey accepted a record for another key:\n%s", out)
	}
}
