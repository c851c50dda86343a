package smtpd

import (
	"context"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"

	"github.com/relayctl/relayctl/pkg/dkim"
	"github.com/relayctl/relayctl/pkg/dnsclient"
	"github.com/relayctl/relayctl/pkg/dnstest"
	"github.com/relayctl/relayctl/pkg/smtptest"
)

// TestDKIMSigningAtSubmission signs with the key for the From domain and
// checks the queued message with pkg/dkim's verifier against a real DNS
// server holding the public key.
func TestDKIMSigningAtSubmission(t *testing.T) {
	key, err := dkim.GenerateKey("ed25519", 0)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := dkim.NewRecord("s1", "example.com", key.Public())
	if err != nil {
		t.Fatal(err)
	}
	dns := dnstest.Start(t, rec.ZoneLine+"\n")
	res, err := dnsclient.New([]string{dns.Addr()})
	if err != nil {
		t.Fatal(err)
	}

	cfg := Config{
		Users:           []User{{Name: "app", PasswordHash: testHash(t)}},
		DKIM:            []dkim.SignOptions{{Domain: "example.com", Selector: "s1", Signer: key}},
		UnsignedDomains: []string{"smarthost-resigns.test"},
	}
	ts := startServer(t, cfg, serverOpts{})
	submit := func(from, rcpt string) {
		t.Helper()
		c := ts.dial(t)
		if err := c.Auth(sasl.NewPlainClient("", "app", "secret")); err != nil {
			t.Fatal(err)
		}
		msg := "From: App <" + from + ">\r\nTo: " + rcpt + "\r\nSubject: Invoice\r\n\r\nPlease pay.\r\n"
		if err := smtptest.Send(c, from, []string{rcpt}, msg); err != nil {
			t.Fatal(err)
		}
	}
	submit("billing@mail.example.com", "x@dest.test") // subdomain: signed with the parent's key
	submit("a@other.test", "x@dest.test")             // no key: unsigned
	submit("a@example.com", "y@smarthost-resigns.test")

	envs, bodies := ts.messages(t)
	if len(envs) != 3 {
		t.Fatalf("queued %d", len(envs))
	}
	for i, e := range envs {
		signed := strings.HasPrefix(bodies[i], "DKIM-Signature:")
		wantSigned := e.From == "billing@mail.example.com"
		if signed != wantSigned {
			t.Errorf("%s → %s: signed = %v, want %v\n%s", e.From, e.Recipients[0].Address, signed, wantSigned, bodies[i])
			continue
		}
		if !signed {
			continue
		}
		vs, err := dkim.Verify(context.Background(), res, strings.NewReader(bodies[i]))
		if err != nil {
			t.Fatal(err)
		}
		if len(vs) != 1 || vs[0].Result != "pass" || vs[0].Domain != "example.com" || vs[0].Selector != "s1" {
			t.Fatalf("verification %+v\n%s", vs, bodies[i])
		}
	}
}
