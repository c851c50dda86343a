package dkim_test

import (
	"bytes"
	"context"
	"crypto"
	"strings"
	"testing"

	"github.com/relayctl/relayctl/pkg/dkim"
	"github.com/relayctl/relayctl/pkg/dnstest"
)

// benchMsg is a typical 4 KiB message.
var benchMsg = "From: Joe <joe@example.com>\r\nTo: suzie@example.net\r\nSubject: dinner\r\nDate: Fri, 11 Jul 2003 21:00:37 -0700\r\nMessage-ID: <1@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
	strings.Repeat("The quick brown fox jumps over the lazy dog, again and again.\r\n", 64)

func benchKeys(b *testing.B) (map[string]crypto.Signer, string) {
	b.Helper()
	keys := map[string]crypto.Signer{}
	zone := ""
	for _, k := range []struct{ sel, algo string }{{"rsa", dkim.AlgoRSA}, {"ed", dkim.AlgoEd25519}} {
		s, err := dkim.GenerateKey(k.algo, 2048)
		if err != nil {
			b.Fatal(err)
		}
		keys[k.sel] = s
		rec, _ := dkim.NewRecord(k.sel, "example.com", s.Public())
		zone += rec.ZoneLine + "\n"
	}
	return keys, zone
}

// BenchmarkSign signs a 4 KiB message (relaxed/relaxed, default headers).
func BenchmarkSign(b *testing.B) {
	keys, _ := benchKeys(b)
	for _, sel := range []string{"rsa", "ed"} {
		b.Run(sel, func(b *testing.B) {
			o := dkim.SignOptions{Domain: "example.com", Selector: sel, Signer: keys[sel]}
			msg := []byte(benchMsg)
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				if _, err := dkim.SignatureHeader(msg, o); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerify verifies a signed 4 KiB message, including the key's
// TXT lookup from a loopback DNS server (no cache: one query per op).
func BenchmarkVerify(b *testing.B) {
	keys, zone := benchKeys(b)
	srv, err := dnstest.New(zone)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	r := clientFor(b, srv)
	for _, sel := range []string{"rsa", "ed"} {
		b.Run(sel, func(b *testing.B) {
			var signed bytes.Buffer
			dkim.Sign(&signed, strings.NewReader(benchMsg), dkim.SignOptions{Domain: "example.com", Selector: sel, Signer: keys[sel]})
			msg := signed.Bytes()
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				vs, err := dkim.Verify(context.Background(), r, bytes.NewReader(msg))
				if err != nil || vs[0].Result != dkim.ResultPass {
					b.Fatal(vs, err)
				}
			}
		})
	}
}
