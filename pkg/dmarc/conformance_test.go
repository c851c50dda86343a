package dmarc

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/relayctl/relayctl/pkg/report"
	"github.com/relayctl/relayctl/pkg/sharedtest"
)

// TestRFC8463Message evaluates the signed example of RFC 8463 Appendix A.3
// (one Ed25519 and one RSA signature by football.example.com) under a
// strict DMARC policy: both signatures verify and align, so it passes;
// with the From domain changed (a spoof) the signatures break and it fails.
func TestRFC8463Message(t *testing.T) {
	msg, err := os.ReadFile(sharedtest.File(t, "dkim", "rfc8463-A3-signed.eml"))
	if err != nil {
		t.Fatal(err)
	}
	var zone strings.Builder
	zone.WriteString("_dmarc.football.example.com. TXT \"v=DMARC1; p=reject; adkim=s; aspf=s\"\n")
	zone.WriteString("_dmarc.example.net. TXT \"v=DMARC1; p=quarantine\"\n")
	for _, sel := range []string{"brisbane", "test"} {
		key, err := os.ReadFile(sharedtest.File(t, "dkim", "rfc8463-A2-"+sel+"._domainkey.football.example.com.txt"))
		if err != nil {
			t.Fatal(err)
		}
		zone.WriteString(sel + "._domainkey.football.example.com. TXT \"" + strings.TrimSpace(string(key)) + "\"\n")
	}
	_, r := resolver(t, zone.String())

	rep := report.New("check dmarc", "rfc8463")
	res, err := CheckMessage(context.Background(), r, msg, MessageOptions{}, rep)
	if err != nil {
		t.Fatal(err)
	}
	if res.DMARC != ResultPass || res.FromDomain != "football.example.com" || len(res.DKIM) != 2 || res.Policy != PolicyReject {
		t.Fatalf("dmarc %s from %s policy %s dkim %+v findings %+v", res.DMARC, res.FromDomain, res.Policy, res.DKIM, rep.Findings)
	}
	for _, d := range res.DKIM {
		if d.Result != "pass" || !d.Aligned {
			t.Errorf("signature %+v", d)
		}
	}

	spoof := bytes.Replace(msg, []byte("From: Joe SixPack <joe@football.example.com>"), []byte("From: Joe SixPack <joe@example.net>"), 1)
	rep = report.New("check dmarc", "spoof")
	res, err = CheckMessage(context.Background(), r, spoof, MessageOptions{}, rep)
	if err != nil {
		t.Fatal(err)
	}
	if res.DMARC != ResultFail || res.Disposition != "quarantine" || !rep.Has(CodeFail) {
		t.Errorf("spoof: dmarc %s disposition %s %+v", res.DMARC, res.Disposition, rep.Findings)
	}
}
