package relay

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relayctl/relayctl/pkg/dkim"
	"github.com/relayctl/relayctl/pkg/dkimpytest"
	"github.com/relayctl/relayctl/pkg/events"
	"github.com/relayctl/relayctl/pkg/postfixtest"
)

// Interoperability with real implementations on the receiving side:
// Postfix's smtp-sink accepts what the relay delivers, and dkimpy (an
// independent DKIM implementation) verifies the signature on what the
// sink captured. .ci/deps installs postfix and python3-dkim; without them
// these tests skip and say why.

// TestDeliveryToPostfixSink closes the loop: a client submits to the
// relay, the relay signs (Ed25519 for one sender domain, RSA-2048 for
// another), finds the MX on the test DNS server and delivers to
// Postfix's smtp-sink; the sink's capture is the submitted message
// byte for byte behind the relay's DKIM-Signature and Received fields,
// and dkimpy verifies the signature on it.
func TestDeliveryToPostfixSink(t *testing.T) {
	py := dkimpytest.Python(t)
	sk := postfixtest.StartSink(t)

	rsaKey, err := dkim.GenerateKey(dkim.AlgoRSA, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaRec, err := dkim.NewRecord("s2", "rsa.example.com", rsaKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	pemKey, err := dkim.MarshalPrivateKey(rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	rsaFile := filepath.Join(t.TempDir(), "rsa.pem")
	if err := os.WriteFile(rsaFile, pemKey, 0o600); err != nil {
		t.Fatal(err)
	}
	nets, _ := ParseNetworks([]string{"127.0.0.0/8"})
	l := startLab(t, func(c *Config) {
		c.SMTP.TrustedNetworks = nets
		c.Delivery.Port = sk.Port // the MX of dest.test (127.0.0.1) on the sink's port
		c.DKIMKeys = append(c.DKIMKeys, DKIMKey{Domain: "rsa.example.com", Selector: "s2", KeyFile: rsaFile})
	})
	if err := l.dns.AddZone(rsaRec.ZoneLine + "\n"); err != nil {
		t.Fatal(err)
	}

	// Content that trips up careless transports: dot-stuffing (a lone
	// dot, leading dots), folded and trailing-whitespace header lines,
	// 8-bit UTF-8, empty lines, a long line, a body ending in blank lines.
	body := "MIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"Content-Transfer-Encoding: 8bit\r\n" +
		"Subject: invoice 2026-11 for the account of\r\n\tJ\xc3\xb6rg M\xc3\xbcller  \r\n" +
		"To: user@dest.test, other@dest.test\r\n" +
		"Date: Sun, 29 Nov 2026 18:00:00 +0000\r\n" +
		"\r\n" +
		"Gr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln \xe2\x80\x94 \xf0\x9f\x8d\xba\r\n" +
		".\r\n" +
		"..two dots\r\n" +
		".leading dot\r\n" +
		"trailing space \t \r\n" +
		"\r\n" +
		strings.Repeat("0123456789", 90) + "\r\n" +
		"\r\n\r\n"
	msgs := []struct{ from, msg, domain, selector string }{
		{"billing@example.com", "From: Billing <billing@example.com>\r\nMessage-ID: <ed25519.1@example.com>\r\n" + body, "example.com", "s1"},
		{"billing@rsa.example.com", "From: Billing <billing@rsa.example.com>\r\nMessage-ID: <rsa.1@example.com>\r\n" + body, "rsa.example.com", "s2"},
	}
	for _, m := range msgs {
		c := l.client(t, false)
		if err := c.SendMail(m.from, []string{"user@dest.test", "other@dest.test"}, strings.NewReader(m.msg)); err != nil {
			t.Fatalf("submit %s: %v", m.from, err)
		}
		c.Quit()
	}

	got := sk.Wait(t, len(msgs), 8*time.Second)
	if len(got) != len(msgs) {
		t.Fatalf("smtp-sink captured %d messages, want %d", len(got), len(msgs))
	}

	var captured [][]byte
	for _, m := range msgs {
		var s *postfixtest.Message
		for i := range got {
			if bytes.HasSuffix(got[i].Data, []byte(m.msg)) {
				s = &got[i]
			}
		}
		if s == nil {
			t.Errorf("%s: no capture ends with the submitted message byte for byte; captures:\n%s", m.from, dumpCaptures(got))
			continue
		}
		// The envelope as Postfix's receiver saw it.
		if s.Helo != "relay.test" {
			t.Errorf("%s: EHLO %q, want the relay's hostname relay.test", m.from, s.Helo)
		}
		if !strings.HasPrefix(s.Mail, "<"+m.from+">") {
			t.Errorf("%s: MAIL args %q", m.from, s.Mail)
		}
		if len(s.Rcpts) != 2 || !strings.HasPrefix(s.Rcpts[0], "<user@dest.test>") || !strings.HasPrefix(s.Rcpts[1], "<other@dest.test>") {
			t.Errorf("%s: RCPT args %q, want user@ and other@dest.test in one transaction", m.from, s.Rcpts)
		}
		// What the relay put in front: its signature, then its trace field.
		added := string(s.Data[:len(s.Data)-len(m.msg)])
		if !strings.HasPrefix(added, "DKIM-Signature: ") {
			t.Errorf("%s: delivered message does not start with DKIM-Signature:\n%s", m.from, added)
		}
		if !strings.Contains(added, "d="+m.domain+";") || !strings.Contains(added, "s="+m.selector+";") {
			t.Errorf("%s: signature is not d=%s s=%s:\n%s", m.from, m.domain, m.selector, added)
		}
		if i := strings.Index(added, "\r\nReceived: from "); i < 0 || !strings.Contains(added[i:], "by relay.test (relayctl)") {
			t.Errorf("%s: no Received field from the relay after the signature:\n%s", m.from, added)
		}
		captured = append(captured, s.Data)
	}
	if t.Failed() {
		return
	}

	for i, oks := range dkimpytest.Verify(t, py, l.dns.Addr(), captured) {
		if len(oks) != 1 || !oks[0].OK {
			t.Errorf("%s: dkimpy on the message smtp-sink received: %v, want one signature that verifies", msgs[i].from, oks)
		}
	}
	// The delivery log records the sink's acceptance (written just after
	// the sink's reply: poll).
	delivered := 0
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		delivered = 0
		for _, e := range readLog(t, l.logPath) {
			if e.Result == "delivered" {
				delivered++
			}
		}
		if delivered >= 2*len(msgs) || time.Now().After(deadline) {
			break
		}
	}
	if delivered != 2*len(msgs) {
		t.Errorf("delivery log: %d delivered events, want %d", delivered, 2*len(msgs))
	}
}

func dumpCaptures(ms []postfixtest.Message) string {
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "--- MAIL %s RCPT %q\n%q\n", m.Mail, m.Rcpts, m.Data)
	}
	return b.String()
}

// TestDeliveryThroughPostfixSTARTTLS: the relay delivers to a real
// Postfix smtpd as the MX, with STARTTLS required and the certificate
// verified against the MX host name; Postfix relays to smtp-sink. What
// the sink captured is the submitted message behind the relay's fields
// and Postfix's own Received field (which records ESMTPS), and dkimpy
// still verifies the relay's signature after the second hop.
func TestDeliveryThroughPostfixSTARTTLS(t *testing.T) {
	py := dkimpytest.Python(t)
	sk := postfixtest.StartSink(t)
	pf := postfixtest.Start(t, postfixtest.Options{RelayHost: sk.Addr, TLSNames: []string{"mx1.dest.test"}})
	_, pfPort, _ := net.SplitHostPort(pf.Addr)
	port, _ := strconv.Atoi(pfPort)
	nets, _ := ParseNetworks([]string{"127.0.0.0/8"})
	l := startLab(t, func(c *Config) {
		c.SMTP.TrustedNetworks = nets
		c.Delivery.Port = port
		c.Delivery.RootCAs = pf.RootCAs
		c.Delivery.RequireTLS = true
	})

	msg := "From: Billing <billing@example.com>\r\n" +
		"To: user@dest.test\r\n" +
		"Subject: through Postfix\r\n" +
		"Date: Sun, 29 Nov 2026 18:00:00 +0000\r\n" +
		"Message-ID: <pf.1@example.com>\r\n" +
		"\r\n" +
		"Hello.\r\n.\r\n..dots\r\n\r\n"
	c := l.client(t, false)
	if err := c.SendMail("billing@example.com", []string{"user@dest.test"}, strings.NewReader(msg)); err != nil {
		t.Fatalf("submit: %v", err)
	}
	c.Quit()

	got := sk.Wait(t, 1, 8*time.Second)[0]
	if !bytes.HasSuffix(got.Data, []byte(msg)) {
		t.Fatalf("message changed in transit:\nsent %q\ngot  %q", msg, got.Data)
	}
	added := string(got.Data[:len(got.Data)-len(msg)])
	pfReceived, relayAdded, ok := strings.Cut(added, "\r\nDKIM-Signature: ")
	if !ok || !strings.HasPrefix(pfReceived, "Received: from relay.test ") || !strings.Contains(pfReceived, "by "+pf.Hostname+" (Postfix) with ESMTPS") {
		t.Errorf("want Postfix's Received field (ESMTPS, from relay.test), then the relay's signature; got:\n%s", added)
	}
	if !strings.Contains(relayAdded, "Received: from app.test") || !strings.Contains(relayAdded, "by relay.test (relayctl)") {
		t.Errorf("no Received field from the relay:\n%s", relayAdded)
	}
	if res := dkimpytest.Verify(t, py, l.dns.Addr(), [][]byte{got.Data}); len(res[0]) != 1 || !res[0][0].OK {
		t.Errorf("dkimpy after relayctl → Postfix → smtp-sink: %v", res[0])
	}
	pf.WaitLog(t, "status=sent", 1, 5*time.Second)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var ev *events.Event
		for _, e := range readLog(t, l.logPath) {
			if e.Result == "delivered" {
				ev = &e
			}
		}
		if ev != nil {
			if !ev.TLS || ev.Code != 250 || !strings.Contains(ev.Response, "queued as") {
				t.Errorf("delivery event: tls=%v code=%d response %q", ev.TLS, ev.Code, ev.Response)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no delivered event in the delivery log")
		}
	}
}
