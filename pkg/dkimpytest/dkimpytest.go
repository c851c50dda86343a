// Package dkimpytest runs dkimpy, an independent DKIM implementation
// (RFC 6376, Ed25519 keys per RFC 8463), for interoperability tests: it
// verifies and signs messages in one Python process per call, fetching
// keys from a test DNS server (pkg/dnstest) through dnspython and
// dkimpy's dnsfunc hook, so no test touches the system resolver.
//
// Without dkimpy (Debian package python3-dkim, installed by .ci/deps)
// Python skips the test and says why.
package dkimpytest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// script verifies and signs as a JSON job file (argv[1]) says and
// prints the results as JSON on stdout.
const script = `
import sys, json, dkim
import dns.resolver
job = json.load(open(sys.argv[1]))
host, port = job["dns"].rsplit(":", 1)
res = dns.resolver.Resolver(configure=False)
res.nameservers = [host]; res.port = int(port); res.lifetime = 5
def dnsfunc(name, timeout=5):
    if isinstance(name, bytes): name = name.decode()
    try:
        ans = res.resolve(name, "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return None
    for rr in ans:
        return b"".join(rr.strings)
out = {"verify": [], "sign": []}
for f in job.get("verify") or []:
    msg = open(f, "rb").read()
    n = sum(1 for k, v in dkim.DKIM(msg).headers if k.lower() == b"dkim-signature")
    sigs = []
    for i in range(n):
        try:
            sigs.append({"ok": bool(dkim.DKIM(msg).verify(idx=i, dnsfunc=dnsfunc))})
        except Exception as e:
            sigs.append({"ok": False, "error": "%s: %s" % (type(e).__name__, e)})
    out["verify"].append(sigs)
for s in job.get("sign") or []:
    msg = open(s["file"], "rb").read()
    key = open(s["key"], "rb").read()
    h, b = s["canon"].split("/")
    sig = dkim.sign(msg, s["selector"].encode(), s["domain"].encode(), key,
                    canonicalize=(h.encode(), b.encode()),
                    signature_algorithm=s["algo"].encode())
    open(s["out"], "wb").write(sig + msg)
    out["sign"].append("ok")
print(json.dumps(out))
`

// Job is one run of dkimpy.
type Job struct {
	// DNS is the host:port of the DNS server that publishes the keys.
	DNS string `json:"dns"`
	// Verify lists message files whose DKIM-Signature fields dkimpy
	// verifies.
	Verify []string `json:"verify,omitempty"`
	// Sign lists messages dkimpy signs.
	Sign []Sign `json:"sign,omitempty"`
}

// Sign asks dkimpy to sign File with the private key in Key (PKCS#1 PEM
// for RSA, the base64 seed for Ed25519) and write the signed message to
// Out.
type Sign struct {
	File     string `json:"file"`
	Key      string `json:"key"`
	Domain   string `json:"domain"`
	Selector string `json:"selector"`
	Algo     string `json:"algo"`  // rsa-sha256 or ed25519-sha256
	Canon    string `json:"canon"` // header/body, e.g. relaxed/simple
	Out      string `json:"out"`
}

// Sig is dkimpy's verdict on one DKIM-Signature field.
type Sig struct {
	OK bool `json:"ok"`
	// Error is the exception dkimpy raised, if any.
	Error string `json:"error,omitempty"`
}

func (s Sig) String() string {
	if s.Error != "" {
		return s.Error
	}
	return fmt.Sprint(s.OK)
}

// Result holds, per Job.Verify file, the verdict on each of its
// signatures in order, and per Job.Sign entry "ok".
type Result struct {
	Verify [][]Sig  `json:"verify"`
	Sign   []string `json:"sign"`
}

// Python returns a Python interpreter that imports dkimpy, dnspython and
// PyNaCl (Debian's /usr/bin/python3 first: a python3 earlier in PATH may
// be another installation), or skips the test.
func Python(t testing.TB) string {
	t.Helper()
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(py, "-c", "import dkim, dns.resolver, nacl").Run() == nil {
			return py
		}
	}
	t.Skip("dkimpy is not installed (Debian: python3-dkim, installed by .ci/deps); skipping the interoperability test")
	return ""
}

// Run runs job with the interpreter py (from Python) and fails the test
// if dkimpy cannot.
func Run(t testing.TB, py string, job Job) Result {
	t.Helper()
	dir := t.TempDir()
	scriptFile, jobFile := filepath.Join(dir, "interop.py"), filepath.Join(dir, "job.json")
	b, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(scriptFile, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(jobFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, scriptFile, jobFile).Output()
	if err != nil {
		var stderr []byte
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			stderr = ee.Stderr
		}
		t.Fatalf("dkimpy: %v\n%s", err, stderr)
	}
	var res Result
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("dkimpy output: %v\n%s", err, out)
	}
	if len(res.Verify) != len(job.Verify) || len(res.Sign) != len(job.Sign) {
		t.Fatalf("dkimpy answered %d verify and %d sign results for %d and %d", len(res.Verify), len(res.Sign), len(job.Verify), len(job.Sign))
	}
	return res
}

// Verify writes msgs to files and returns dkimpy's verdicts on their
// signatures, keys fetched from the DNS server at dnsAddr.
func Verify(t testing.TB, py, dnsAddr string, msgs [][]byte) [][]Sig {
	t.Helper()
	dir := t.TempDir()
	job := Job{DNS: dnsAddr}
	for i, m := range msgs {
		f := filepath.Join(dir, fmt.Sprintf("msg%d.eml", i))
		if err := os.WriteFile(f, m, 0o644); err != nil {
			t.Fatal(err)
		}
		job.Verify = append(job.Verify, f)
	}
	return Run(t, py, job).Verify
}
