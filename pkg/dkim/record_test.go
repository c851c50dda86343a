package dkim_test

import (
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/relayctl/relayctl/pkg/dkim"
	"github.com/relayctl/relayctl/pkg/report"
)

// Test keys: the RFC 8463 A.2 Ed25519 key and the RFC 6376 Appendix C RSA key.
const (
	edP  = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
	rsaP = "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDwIRP/UC3SBsEmGqZ9ZJW3/DkMoGeLnQg1fWn7/zYtIxN2SnFCjxOCKG9v3b4jYfcTNh5ijSsq631uBItLa7od+v/RtdC2UzJ1lWT947qR+Rcac2gbto/NMqJ0fzfVjH4OuKhitdY9tf6mcwGjaNBcWToIMmPSPDdQPNUYckcQ2QIDAQAB"
)

func codes(fs []report.Finding) string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Code+":"+string(f.Severity))
	}
	return strings.Join(out, ",")
}

func TestAuditKeyRecord(t *testing.T) {
	rk, _ := dkim.GenerateKey(dkim.AlgoRSA, 2048)
	_, _, p2048, _ := dkim.KeyInfo(rk.Public())
	pkcs1 := base64.StdEncoding.EncodeToString(x509.MarshalPKCS1PublicKey(rk.Public().(*rsa.PublicKey)))
	edSPKI, _ := x509.MarshalPKIXPublicKey(ed25519.PublicKey(mustB64(edP)))
	// A 512-bit modulus, built by hand (Go refuses to generate one).
	short := base64.StdEncoding.EncodeToString(x509.MarshalPKCS1PublicKey(&rsa.PublicKey{N: new512(), E: 65537}))

	for _, tc := range []struct{ rec, want string }{
		{"v=DKIM1; k=rsa; p=" + p2048, ""},
		{"v=DKIM1; k=ed25519; p=" + edP, ""},
		{"p=" + p2048, ""}, // v= and k= are optional
		{"v=DKIM1; p=" + rsaP, "dkim.key-short:warning"},
		{"v=DKIM1; p=" + short, "dkim.key-pkcs1:warning,dkim.key-too-short:error"},
		{"v=DKIM1; p=" + pkcs1, "dkim.key-pkcs1:warning"},
		{"v=DKIM1; k=rsa; p=", "dkim.key-revoked:error"},
		{"v=DKIM1; k=rsa", "dkim.key-missing:error"},
		{"v=DKIM2; p=" + p2048, "dkim.bad-version:error"},
		{"k=rsa; v=DKIM1; p=" + p2048, "dkim.version-not-first:warning"},
		{"v=DKIM1; k=dsa; p=" + p2048, "dkim.unknown-key-type:error"},
		{"v=DKIM1; k=rsa; p=" + edP, "dkim.key-decode:error"},
		{"v=DKIM1; p=" + base64.StdEncoding.EncodeToString(edSPKI), "dkim.key-type-mismatch:error"},
		{"v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(edSPKI), "dkim.ed25519-spki:error"},
		{"v=DKIM1; k=ed25519; p=" + rsaP, "dkim.key-decode:error"},
		{"v=DKIM1; p=" + p2048[:200] + `" "` + p2048[200:], "dkim.split-quotes:error"},
		{"v=DKIM1; p=" + p2048[:200] + " " + p2048[200:], "dkim.split-whitespace:warning"},
		{"v=DKIM1; p=" + p2048[:200] + `\` + p2048[200:], "dkim.key-decode:error"},
		{"v=DKIM1; p=" + p2048[:201], "dkim.key-decode:error"},
		{"v=DKIM1; t=y; p=" + p2048, "dkim.testing:warning"},
		{"v=DKIM1; t=y:s; p=" + p2048, "dkim.testing:warning,dkim.strict-identity:info"},
		{"v=DKIM1; h=sha1; p=" + p2048, "dkim.hash-restricted:error"},
		{"v=DKIM1; h=sha1:sha256; p=" + p2048, ""},
		{"v=DKIM1; s=other; p=" + p2048, "dkim.service-restricted:error"},
		{"v=DKIM1; s=email; p=" + p2048, ""},
		{"v=DKIM1; s=*; p=" + p2048, ""},
		{"v=DKIM1; g=*; k=rsa; p=" + p2048, "dkim.unknown-tag:info"},
		{"v=DKIM1; n=notes; x=1; p=" + p2048, "dkim.unknown-tag:info"},
		{"v=DKIM1; p=" + p2048 + "; p=" + p2048, "dkim.record-syntax:error"},
		{"v=spf1 include:_spf.example.com ~all", "dkim.not-a-key-record:error"},
		{"v=DMARC1; p=none", "dkim.not-a-key-record:error"},
	} {
		_, fs := dkim.AuditKeyRecord(tc.rec)
		if got := codes(fs); got != tc.want {
			name := tc.rec
			if len(name) > 60 {
				name = name[:60] + "…"
			}
			t.Errorf("%s: got %q, want %q", name, got, tc.want)
		}
	}
}

func mustB64(s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}
