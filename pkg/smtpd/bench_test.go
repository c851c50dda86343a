package smtpd

import (
	"bytes"
	"strings"
	"testing"

	"github.com/relayctl/relayctl/pkg/queue"
	"github.com/relayctl/relayctl/pkg/smtptest"
)

// BenchmarkSubmission: one client over loopback submitting 2 KiB
// messages on one connection into a real queue with fsync on, so each
// iteration is a full MAIL/RCPT/DATA round trip plus a durable write.
func BenchmarkSubmission(b *testing.B) {
	q, err := queue.Open(b.TempDir(), queue.DefaultOptions())
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	ts := startServerQueue(b, Config{TrustedNetworks: loopbackNets(b)}, serverOpts{}, q)
	c := ts.dial(b)
	msg := "From: a@example.com\r\nSubject: bench\r\n\r\n" + strings.Repeat(strings.Repeat("x", 76)+"\r\n", 26)
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := smtptest.Send(c, "a@example.com", []string{"x@dest.test"}, msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckLineEndings: the smuggling scan over a 1 MiB message.
func BenchmarkCheckLineEndings(b *testing.B) {
	msg := bytes.Repeat([]byte("0123456789012345678901234567890123456789012345678901234567890123456789012\r\n"), 1<<20/75)
	b.SetBytes(int64(len(msg)))
	for i := 0; i < b.N; i++ {
		if _, err := checkLineEndings(msg); err != nil {
			b.Fatal(err)
		}
	}
}
