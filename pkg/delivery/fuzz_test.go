package delivery

import (
	"bufio"
	"net/textproto"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
)

// FuzzReply feeds arbitrary server replies to the EHLO parser and the
// reply classifier: no panic, and the classification follows the code.
func FuzzReply(f *testing.F) {
	f.Add("250-mx.test\r\n250-SIZE 1000\r\n250-STARTTLS\r\n250 DSN\r\n")
	f.Add("550 5.1.1 no such user\r\n")
	f.Add("451-4.7.1 greylisted\r\n451 4.7.1 come back later\r\n")
	f.Add("502 nope\r\n250 ok\r\n")
	f.Add("250 9.9.999 odd\r\n")
	f.Add("421\r\n")
	f.Fuzz(func(t *testing.T, reply string) {
		tp := textproto.NewConn(fakeConn{bufio.NewReader(strings.NewReader(reply))})
		ext, err := ehlo(tp, "relay.test")
		if err == nil && ext == nil {
			t.Fatal("no error and no extensions")
		}
		if err != nil {
			f := failureOf(err, nil, "h", "ip")
			if f.Code >= 500 && !f.Permanent || f.Code > 0 && f.Code < 500 && f.Permanent {
				t.Fatalf("%d classified permanent=%v", f.Code, f.Permanent)
			}
			if strings.ContainsAny(f.response(), "\r\n") {
				t.Fatalf("multi-line response kept: %q", f.response())
			}
		}
		code, _, _ := strings.Cut(reply, " ")
		if ec, ok := parseEnhanced(code); ok && (ec[0] < 2 || ec[0] > 5) {
			t.Fatalf("accepted enhanced code %v", ec)
		}
		_ = smtp.EnhancedCode{}
	})
}

type fakeConn struct{ r *bufio.Reader }

func (c fakeConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c fakeConn) Write(p []byte) (int, error) { return len(p), nil }
func (c fakeConn) Close() error                { return nil }
