package smtpd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/relayctl/relayctl/pkg/events"
	"github.com/relayctl/relayctl/pkg/queue"
	"github.com/relayctl/relayctl/pkg/smtptest"
)

func loopbackNets(t testing.TB) []*net.IPNet {
	_, n, err := net.ParseCIDR("127.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	return []*net.IPNet{n}
}

func TestUnauthenticatedRelayRefused(t *testing.T) {
	ts := startServer(t, Config{Users: []User{{Name: "app", PasswordHash: testHash(t)}}}, serverOpts{})
	c := ts.dial(t)
	err := c.Mail("app@example.com", nil)
	wantCode(t, err, 530, "MAIL without AUTH")
	if !strings.Contains(err.Error(), "Authentication required") {
		t.Errorf("reply %q does not say Authentication required", err)
	}
	// A client that ignores the 530 and pipelines RCPT and DATA anyway.
	r := dialRaw(t, ts.Addr)
	r.expect("220 ")
	r.write("EHLO x\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@dest.test>\r\nDATA\r\n")
	r.expect("250")
	r.expect("530 5.7.0")
	r.expect("502") // RCPT: no MAIL
	r.expect("502") // DATA: no RCPT
	envs, _ := ts.messages(t)
	if len(envs) != 0 {
		t.Fatalf("an unauthenticated relay attempt was queued: %+v", envs)
	}
}

func TestTrustedNetworkRelaysAndFixesUpHeaders(t *testing.T) {
	ts := startServer(t, Config{TrustedNetworks: loopbackNets(t)}, serverOpts{})
	c := ts.dial(t)
	msg := "From: app@example.com\r\nTo: a@dest.test\r\nSubject: x\r\n\r\nbody\r\n"
	if err := smtptest.Send(c, "app@example.com", []string{"a@dest.test", "b@other.test", "A@dest.test"}, msg); err != nil {
		t.Fatalf("trusted client refused: %v", err)
	}
	envs, bodies := ts.messages(t)
	if len(envs) != 1 {
		t.Fatalf("queued %d messages, want 1", len(envs))
	}
	e, body := envs[0], bodies[0]
	if e.From != "app@example.com" || len(e.Recipients) != 2 || e.ClientIP != "127.0.0.1" || e.AuthUser != "" {
		t.Errorf("envelope = %+v", e)
	}
	for _, r := range e.Recipients {
		if r.State != queue.StateQueued {
			t.Errorf("recipient %s state %q", r.Address, r.State)
		}
	}
	if e.Size != int64(len(body)) {
		t.Errorf("envelope size %d, content %d bytes", e.Size, len(body))
	}
	if !strings.HasPrefix(body, "Received: from client.test ([127.0.0.1])\r\n\tby relay.test (relayctl) with ESMTP;") {
		t.Errorf("no Received field first:\n%s", body)
	}
	if !strings.Contains(body, "\r\nMessage-ID: <") || !strings.Contains(body, "\r\nDate: ") {
		t.Errorf("Message-ID/Date not added (RFC 6409 §8):\n%s", body)
	}
	if e.MessageID == "" || !strings.Contains(body, e.MessageID) {
		t.Errorf("envelope MessageID %q not the message's", e.MessageID)
	}
	if !strings.HasSuffix(body, msg) {
		t.Errorf("original message altered:\n%s", body)
	}
}

func TestMessageIDKept(t *testing.T) {
	ts := startServer(t, Config{TrustedNetworks: loopbackNets(t)}, serverOpts{})
	msg := "Message-ID: <abc@example.com>\r\nDate: Mon, 2 Jan 2006 15:04:05 +0000\r\n" + simpleMsg
	if err := smtptest.Send(ts.dial(t), "app@example.com", []string{"a@dest.test"}, msg); err != nil {
		t.Fatal(err)
	}
	envs, bodies := ts.messages(t)
	if envs[0].MessageID != "<abc@example.com>" || strings.Count(bodies[0], "Message-ID:") != 1 || strings.Count(bodies[0], "Date:") != 1 {
		t.Errorf("envelope %+v\n%s", envs[0], bodies[0])
	}
	if !strings.Contains(bodies[0], "\tfor <a@dest.test>;") {
		t.Errorf("single recipient not in Received:\n%s", bodies[0])
	}
}

// TestAuthMatrix: where AUTH is offered and works.
func TestAuthMatrix(t *testing.T) {
	users := []User{{Name: "app", PasswordHash: testHash(t)}}
	tests := []struct {
		name     string
		mode     string
		remote   bool
		insecure bool
		starttls bool // issue STARTTLS before AUTH
		implicit bool // dial with TLS
		offered  bool
	}{
		{name: "plain loopback", mode: ModePlain, offered: true},
		{name: "starttls listener, loopback, before TLS", mode: ModeStartTLS, offered: true},
		{name: "starttls listener, remote, before TLS", mode: ModeStartTLS, remote: true, offered: false},
		{name: "starttls listener, remote, after STARTTLS", mode: ModeStartTLS, remote: true, starttls: true, offered: true},
		{name: "implicit TLS, remote", mode: ModeTLS, remote: true, implicit: true, offered: true},
		{name: "remote without TLS, insecure_auth", mode: ModeStartTLS, remote: true, insecure: true, offered: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, Config{Users: users, InsecureAuth: tt.insecure}, serverOpts{mode: tt.mode, remote: tt.remote})
			var c *smtp.Client
			switch {
			case tt.implicit:
				c = ts.dialTLS(t)
			case tt.starttls:
				c = ts.dialStartTLS(t)
			default:
				c = ts.dial(t)
			}
			ok, mechs := c.Extension("AUTH")
			if ok != tt.offered {
				t.Fatalf("AUTH advertised = %v (%q), want %v", ok, mechs, tt.offered)
			}
			err := c.Auth(sasl.NewPlainClient("", "app", "secret"))
			if !tt.offered {
				// go-smtp's client refuses to AUTH when not advertised;
				// check the server's answer on the wire too.
				if err == nil {
					t.Fatal("AUTH succeeded where it must not be offered")
				}
				return
			}
			if err != nil {
				t.Fatalf("AUTH PLAIN: %v", err)
			}
			if !strings.Contains(mechs, "PLAIN") || !strings.Contains(mechs, "LOGIN") {
				t.Errorf("mechanisms %q", mechs)
			}
			if err := smtptest.Send(c, "app@example.com", []string{"x@dest.test"}, simpleMsg); err != nil {
				t.Fatalf("authenticated submission refused: %v", err)
			}
			envs, _ := ts.messages(t)
			if len(envs) != 1 || envs[0].AuthUser != "app" {
				t.Fatalf("queued %+v", envs)
			}
		})
	}
}

func TestAuthRefusedInCleartextToRemote(t *testing.T) {
	users := []User{{Name: "app", PasswordHash: testHash(t)}}
	ts := startServer(t, Config{Users: users}, serverOpts{mode: ModeStartTLS, remote: true})
	r := dialRaw(t, ts.Addr)
	r.expect("220 ")
	r.write("EHLO x\r\n")
	if ehlo := r.expect("250"); strings.Contains(ehlo, "AUTH") || !strings.Contains(ehlo, "STARTTLS") {
		t.Fatalf("EHLO before TLS:\n%s", ehlo)
	}
	r.write("AUTH PLAIN AGFwcABzZWNyZXQ=\r\n") // \0app\0secret
	r.expect("538 5.7.11")
	r.write("MAIL FROM:<app@example.com>\r\n")
	r.expect("530 5.7.0")
}

func TestPlainNonLoopbackListenerRefusesAuth(t *testing.T) {
	q, err := queue.Open(t.TempDir(), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	s, err := New(Config{Users: []User{{Name: "app", PasswordHash: testHash(t)}}}, q, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.isLoopback = func(net.IP) bool { return false }
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	err = s.Serve(l, ModePlain, nil)
	if err == nil || !strings.Contains(err.Error(), "insecure_auth") {
		t.Fatalf("Serve = %v, want a refusal mentioning insecure_auth", err)
	}
	if err := s.Serve(l, ModeStartTLS, nil); err == nil {
		t.Fatal("starttls listener without a certificate accepted")
	}
}

func TestAuthLogin(t *testing.T) {
	ts := startServer(t, Config{Users: []User{{Name: "app", PasswordHash: testHash(t)}}}, serverOpts{})
	r := dialRaw(t, ts.Addr)
	r.expect("220 ")
	r.write("EHLO x\r\nAUTH LOGIN\r\n")
	r.expect("250")
	r.expect("334 VXNlcm5hbWU6") // "Username:"
	r.write("YXBw\r\n")          // app
	r.expect("334 UGFzc3dvcmQ6") // "Password:"
	r.write("c2VjcmV0\r\n")      // secret
	r.expect("235 ")
	// Initial-response form, wrong password.
	r2 := dialRaw(t, ts.Addr)
	r2.expect("220 ")
	r2.write("EHLO x\r\nAUTH LOGIN YXBw\r\n")
	r2.expect("250")
	r2.expect("334 UGFzc3dvcmQ6")
	r2.write("d3Jvbmc=\r\n")
	r2.expect("535 5.7.8")
}

func TestWrongPasswordRateLimited(t *testing.T) {
	cfg := Config{
		Users:            []User{{Name: "app", PasswordHash: testHash(t)}},
		MaxAuthFailures:  3,
		AuthFailureDelay: 40 * time.Millisecond,
	}
	ts := startServer(t, cfg, serverOpts{})
	c := ts.dial(t)
	var took []time.Duration
	for i := 1; i <= 2; i++ {
		start := time.Now()
		err := c.Auth(sasl.NewPlainClient("", "app", "wrong"))
		took = append(took, time.Since(start))
		wantCode(t, err, 535, fmt.Sprintf("wrong password #%d", i))
	}
	// Failure n waits n × delay: the second must take longer than 2×40ms.
	if took[0] < 40*time.Millisecond || took[1] < 80*time.Millisecond {
		t.Errorf("failures answered after %v; want ≥ 40ms, ≥ 80ms", took)
	}
	// Unknown user counts too, and the third failure blocks the IP.
	err := c.Auth(sasl.NewPlainClient("", "nobody", "secret"))
	wantCode(t, err, 421, "third failure")
	// New connections from the IP are refused, even with the right password.
	r := dialRaw(t, ts.Addr)
	r.expect("421 4.7.0")
	// Other state is untouched: nothing was queued.
	if envs, _ := ts.messages(t); len(envs) != 0 {
		t.Fatal("queued something")
	}
}

func TestAllowedSenders(t *testing.T) {
	users := []User{{Name: "billing", PasswordHash: testHash(t), AllowedSenders: []string{"billing.example.com", "ceo@example.com"}}}
	ts := startServer(t, Config{Users: users}, serverOpts{})
	login := func() *smtp.Client {
		c := ts.dial(t)
		if err := c.Auth(sasl.NewPlainClient("", "billing", "secret")); err != nil {
			t.Fatal(err)
		}
		return c
	}
	msg := func(from string) string { return "From: " + from + "\r\nSubject: s\r\n\r\nb\r\n" }

	wantCode(t, login().Mail("someone@example.com", nil), 553, "envelope sender outside allowed_senders")
	wantCode(t, smtptest.Send(login(), "ceo@example.com", []string{"x@dest.test"}, msg("Boss <boss@example.com>")), 553, "From header outside allowed_senders")
	if err := smtptest.Send(login(), "Invoices@Billing.Example.com", []string{"x@dest.test"}, msg("invoices@billing.example.com")); err != nil {
		t.Fatalf("allowed domain refused: %v", err)
	}
	if err := smtptest.Send(login(), "ceo@example.com", []string{"x@dest.test"}, msg("CEO <ceo@example.com>")); err != nil {
		t.Fatalf("allowed address refused: %v", err)
	}
	if envs, _ := ts.messages(t); len(envs) != 2 {
		t.Fatalf("queued %d, want 2", len(envs))
	}
}

func TestLimits(t *testing.T) {
	cfg := Config{TrustedNetworks: loopbackNets(t), MaxMessageBytes: 1000, MaxRecipients: 2}
	ts := startServer(t, cfg, serverOpts{})
	c := ts.dial(t)
	if ok, size := c.Extension("SIZE"); !ok || size != "1000" {
		t.Errorf("SIZE advertised %v %q, want 1000", ok, size)
	}
	wantCode(t, c.Mail("a@example.com", &smtp.MailOptions{Size: 5000}), 552, "MAIL SIZE=5000")
	c.Reset()
	big := "From: a@example.com\r\n\r\n" + strings.Repeat("0123456789012345678901234567890123456789\r\n", 30)
	wantCode(t, smtptest.Send(c, "a@example.com", []string{"x@dest.test"}, big), 552, "oversized DATA")
	c.Reset()
	if err := c.Mail("a@example.com", nil); err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{0, 0, 452} {
		err := c.Rcpt(fmt.Sprintf("r%d@dest.test", i), nil)
		if code(err) != want {
			t.Fatalf("RCPT %d: %v, want code %d", i+1, err, want)
		}
	}
	// The session is still usable after the refusals.
	c.Reset()
	if err := smtptest.Send(c, "a@example.com", []string{"x@dest.test"}, simpleMsg); err != nil {
		t.Fatalf("after limits: %v", err)
	}
	if envs, _ := ts.messages(t); len(envs) != 1 {
		t.Fatalf("queued %d, want 1", len(envs))
	}
	wantCode(t, c.Rcpt("postmaster", nil), 502, "RCPT outside a transaction")
	c.Mail("a@example.com", nil)
	for _, rcpt := range []string{"postmaster", "user@", "@dest.test"} {
		if err := c.Rcpt(rcpt, nil); code(err)/100 != 5 {
			t.Errorf("RCPT TO:<%s> = %v, want 5xx", rcpt, err)
		}
	}
}

func TestConnectionLimits(t *testing.T) {
	ts := startServer(t, Config{TrustedNetworks: loopbackNets(t), MaxConnsPerIP: 2, MaxConns: 10}, serverOpts{})
	a, b := dialRaw(t, ts.Addr), dialRaw(t, ts.Addr)
	a.expect("220 ")
	b.expect("220 ")
	c := dialRaw(t, ts.Addr)
	c.expect("421 4.7.0")
	a.write("QUIT\r\n")
	a.expect("221")
	// The slot is released when the connection closes.
	deadline := time.Now().Add(2 * time.Second)
	for {
		d := dialRaw(t, ts.Addr)
		if got := d.reply(); strings.HasPrefix(got, "220 ") {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("slot not released: %q", got)
		}
		time.Sleep(10 * time.Millisecond)
	}

	ts2 := startServer(t, Config{TrustedNetworks: loopbackNets(t), MaxConns: 1}, serverOpts{})
	x := dialRaw(t, ts2.Addr)
	x.expect("220 ")
	dialRaw(t, ts2.Addr).expect("421 4.7.0 Too many connections")
}

func TestIdleTimeout(t *testing.T) {
	ts := startServer(t, Config{TrustedNetworks: loopbackNets(t), ReadTimeout: 100 * time.Millisecond}, serverOpts{})
	r := dialRaw(t, ts.Addr)
	r.expect("220 ")
	r.expect("421 4.4.2")
}

// TestSmuggling sends the SMTP smuggling payloads: data whose lines end
// in bare LF or bare CR, with smuggled commands after a non-standard
// end-of-data. Each must be refused with 5xx, nothing queued, and the
// smuggled MAIL must not run as a command.
func TestSmuggling(t *testing.T) {
	payloads := map[string]string{
		`\n.\n`:     "Subject: s\r\n\r\nhi\n.\nMAIL FROM:<evil@example.com>\r\nRCPT TO:<v@dest.test>\r\nDATA\r\nFrom: ceo@example.com\r\n\r\nsmuggled\r\n",
		`\r.\r\n`:   "Subject: s\r\n\r\nhi\r.\r\nMAIL FROM:<evil@example.com>\r\n",
		`\n.\r\n`:   "Subject: s\r\n\r\nhi\n.\r\nMAIL FROM:<evil@example.com>\r\n",
		`\r\n.\n`:   "Subject: s\r\n\r\nhi\r\n.\nMAIL FROM:<evil@example.com>\r\n",
		`\r.\n`:     "Subject: s\r\n\r\nhi\r.\nMAIL FROM:<evil@example.com>\r\n",
		"bare LF":   "Subject: s\nX: y\r\n\r\nhi\r\n",
		"bare CR":   "Subject: s\r\n\r\nh\ri\r\n",
		"header LF": "From: a@example.com\n\r\nbody\r\n",
	}
	ts := startServer(t, Config{TrustedNetworks: loopbackNets(t)}, serverOpts{})
	for name, data := range payloads {
		t.Run(name, func(t *testing.T) {
			r := dialRaw(t, ts.Addr)
			r.expect("220 ")
			r.write("EHLO x\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@dest.test>\r\nDATA\r\n")
			r.expect("250")
			r.expect("250")
			r.expect("250")
			r.expect("354")
			r.write("From: a@example.com\r\n" + data + ".\r\n")
			r.expect("550 5.6.0 Message contains a bare")
			// The connection is in sync: the next command is answered.
			r.write("NOOP\r\n")
			r.expect("250")
		})
	}
	if envs, _ := ts.messages(t); len(envs) != 0 {
		t.Fatalf("smuggling payload queued: %+v", envs)
	}
}

// TestDotCRGap documents what go-smtp's DATA reader does with a line
// starting ".\r" not followed by "\n": it drops both bytes before the
// backend sees them, so the bare CR cannot be detected — and is not
// relayed either (see docs/serve.md).
func TestDotCRGap(t *testing.T) {
	ts := startServer(t, Config{TrustedNetworks: loopbackNets(t)}, serverOpts{})
	r := dialRaw(t, ts.Addr)
	r.expect("220 ")
	r.write("EHLO x\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@dest.test>\r\nDATA\r\n")
	for range 4 {
		r.reply()
	}
	r.write("From: a@example.com\r\n\r\nhi\r\n.\rX\r\n.\r\n")
	r.expect("250")
	_, bodies := ts.messages(t)
	if len(bodies) != 1 || !strings.HasSuffix(bodies[0], "\r\nhi\r\nX\r\n") {
		t.Fatalf("queued %q", bodies)
	}
}

func TestDSNParameters(t *testing.T) {
	ts := startServer(t, Config{TrustedNetworks: loopbackNets(t)}, serverOpts{})
	c := ts.dial(t)
	if ok, _ := c.Extension("DSN"); !ok {
		t.Fatal("DSN not advertised")
	}
	if err := c.Mail("a@example.com", &smtp.MailOptions{Return: smtp.DSNReturnHeaders, EnvelopeID: "inv-42"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("x@dest.test", &smtp.RcptOptions{
		Notify:                []smtp.DSNNotify{smtp.DSNNotifySuccess, smtp.DSNNotifyFailure},
		OriginalRecipientType: smtp.DSNAddressTypeRFC822, OriginalRecipient: "orig@dest.test",
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("y@dest.test", &smtp.RcptOptions{Notify: []smtp.DSNNotify{smtp.DSNNotifyNever}}); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(simpleMsg))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	envs, _ := ts.messages(t)
	e := envs[0]
	if e.Ret != queue.RetHdrs || e.EnvID != "inv-42" {
		t.Errorf("RET/ENVID = %q/%q", e.Ret, e.EnvID)
	}
	x, y := e.Recipients[0], e.Recipients[1]
	if strings.Join(x.Notify, ",") != "SUCCESS,FAILURE" || x.ORcpt != "rfc822;orig@dest.test" {
		t.Errorf("x = %+v", x)
	}
	if strings.Join(y.Notify, ",") != "NEVER" || y.ORcpt != "" {
		t.Errorf("y = %+v", y)
	}
}

func TestFromHeaderRequired(t *testing.T) {
	ts := startServer(t, Config{TrustedNetworks: loopbackNets(t)}, serverOpts{})
	c := ts.dial(t)
	wantCode(t, smtptest.Send(c, "a@example.com", []string{"x@dest.test"}, "Subject: none\r\n\r\nb\r\n"), 550, "no From")
	c.Reset()
	wantCode(t, smtptest.Send(c, "a@example.com", []string{"x@dest.test"}, "From: a@example.com\r\nFrom: b@example.com\r\n\r\nb\r\n"), 550, "two From")
}

func TestRcptCheckHook(t *testing.T) {
	var mu sync.Mutex
	var got []events.Event
	cfg := Config{
		TrustedNetworks: loopbackNets(t),
		RcptCheck: func(_ context.Context, from, rcpt string) *smtp.SMTPError {
			if rcpt == "gone@dest.test" {
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "Recipient is suppressed"}
			}
			return nil
		},
		Events: func(e events.Event) { mu.Lock(); got = append(got, e); mu.Unlock() },
	}
	ts := startServer(t, cfg, serverOpts{})
	c := ts.dial(t)
	c.Mail("a@example.com", nil)
	wantCode(t, c.Rcpt("gone@dest.test", nil), 550, "suppressed recipient")
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0].Recipient != "gone@dest.test" || got[0].Result != events.Bounced || got[0].EnhancedCode != "5.1.1" {
		t.Fatalf("events %+v", got)
	}
}

func TestRcptDropHook(t *testing.T) {
	var mu sync.Mutex
	var got []events.Event
	cfg := Config{
		TrustedNetworks: loopbackNets(t),
		RcptDrop: func(_ context.Context, from, rcpt string) (string, bool) {
			return "suppressed", strings.EqualFold(rcpt, "gone@dest.test")
		},
		Events: func(e events.Event) { mu.Lock(); got = append(got, e); mu.Unlock() },
	}
	ts := startServer(t, cfg, serverOpts{})
	c := ts.dial(t)
	msg := "From: a@example.com\r\nSubject: x\r\n\r\nbody\r\n"
	// a duplicate of the dropped recipient is accepted and dropped once
	if err := smtptest.Send(c, "a@example.com", []string{"gone@dest.test", "ok@dest.test", "GONE@dest.test"}, msg); err != nil {
		t.Fatalf("mixed message: %v", err)
	}
	envs, err := ts.Q.List()
	if err != nil || len(envs) != 1 || len(envs[0].Recipients) != 1 || envs[0].Recipients[0].Address != "ok@dest.test" {
		t.Fatalf("queued %+v %v", envs, err)
	}
	// every recipient dropped: 250, nothing queued
	if err := smtptest.Send(c, "a@example.com", []string{"gone@dest.test"}, msg); err != nil {
		t.Fatalf("all-dropped message: %v", err)
	}
	if n := ts.Q.Len(); n != 1 {
		t.Errorf("%d messages queued, want 1", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0].QueueID != envs[0].ID || got[1].QueueID == "" || got[1].QueueID == got[0].QueueID {
		t.Fatalf("events %+v", got)
	}
	for _, e := range got {
		if e.Result != events.Suppressed || e.Recipient != "gone@dest.test" || e.Response != "suppressed" || e.MessageID == "" {
			t.Errorf("event %+v", e)
		}
	}
}

func TestReload(t *testing.T) {
	ts := startServer(t, Config{}, serverOpts{})
	c := ts.dial(t)
	wantCode(t, c.Mail("a@example.com", nil), 530, "before reload")
	if err := ts.Reload(Config{Hostname: "relay.test", Users: []User{{Name: "new", PasswordHash: testHash(t)}}}); err != nil {
		t.Fatal(err)
	}
	c2 := ts.dial(t)
	if err := c2.Auth(sasl.NewPlainClient("", "new", "secret")); err != nil {
		t.Fatalf("user added by reload: %v", err)
	}
	if err := ts.Reload(Config{Users: []User{{Name: "bad", PasswordHash: "plain"}}}); err == nil {
		t.Fatal("reload accepted a non-bcrypt hash")
	}
}

func TestShutdownClosesIdleAndFinishesTransactions(t *testing.T) {
	q, err := queue.Open(t.TempDir(), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	s, err := New(Config{TrustedNetworks: loopbackNets(t), Hostname: "relay.test"}, q, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l, ModePlain, nil) }()

	idle := dialRaw(t, l.Addr().String())
	idle.expect("220 ")
	busy := dialRaw(t, l.Addr().String())
	busy.expect("220 ")
	busy.write("EHLO x\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@dest.test>\r\nDATA\r\n")
	for range 4 {
		busy.reply()
	}
	busy.write("From: a@example.com\r\n\r\nfirst half\r\n")

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- s.Shutdown(ctx)
	}()
	idle.expect("421 4.3.2")
	time.Sleep(50 * time.Millisecond)
	busy.write("second half\r\n.\r\n")
	busy.expect("250")
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("serve: %v", err)
	}
	envs, err := q.List()
	if err != nil || len(envs) != 1 {
		t.Fatalf("queued %d (%v), want the in-flight message", len(envs), err)
	}
	if _, err := net.DialTimeout("tcp", l.Addr().String(), time.Second); err == nil {
		t.Error("still accepting after shutdown")
	}
}

func TestConfigErrors(t *testing.T) {
	q, err := queue.Open(t.TempDir(), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	bad := []Config{
		{Users: []User{{Name: "", PasswordHash: testHash(t)}}},
		{Users: []User{{Name: "a", PasswordHash: "x"}}},
		{Users: []User{{Name: "a", PasswordHash: testHash(t)}, {Name: "a", PasswordHash: testHash(t)}}},
		{Hostname: "bad host"},
	}
	for i, cfg := range bad {
		if _, err := New(cfg, q, nil); err == nil {
			t.Errorf("config %d accepted", i)
		}
	}
	if _, err := New(Config{}, nil, nil); err == nil {
		t.Error("nil queue accepted")
	}
}

// TestStorageFailureAnswers452: when the queue cannot write (here: the
// spool directory is gone, so creating the message file fails like on a
// full or broken disk), the client gets 452 4.3.1, never 250.
func TestStorageFailureAnswers452(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	q, err := queue.Open(dir, queue.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ts := startServerQueue(t, Config{TrustedNetworks: loopbackNets(t)}, serverOpts{}, q)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	err = smtptest.Send(ts.dial(t), "a@example.com", []string{"x@dest.test"}, simpleMsg)
	wantCode(t, err, 452, "enqueue on a refusing disk")
	if !strings.Contains(err.Error(), "Insufficient system storage") {
		t.Errorf("reply %v", err)
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) && se.EnhancedCode != (smtp.EnhancedCode{4, 3, 1}) {
		t.Errorf("enhanced code %v, want 4.3.1", se.EnhancedCode)
	}
	if n := q.Len(); n != 0 {
		t.Errorf("queue holds %d messages after a failed write", n)
	}
}

// TestBDAT: CHUNKING (RFC 3030) goes through the same checks as DATA; a
// bare LF sent in a chunk is refused too, since the message would be
// relayed onward with DATA.
func TestBDAT(t *testing.T) {
	ts := startServer(t, Config{TrustedNetworks: loopbackNets(t)}, serverOpts{})
	r := dialRaw(t, ts.Addr)
	r.expect("220 ")
	if ehlo := func() string { r.write("EHLO x\r\n"); return r.expect("250") }(); !strings.Contains(ehlo, "CHUNKING") {
		t.Fatalf("CHUNKING not advertised:\n%s", ehlo)
	}
	bdat := func(data string) string {
		r.write("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@dest.test>\r\n")
		r.expect("250")
		r.expect("250")
		r.write(fmt.Sprintf("BDAT %d LAST\r\n%s", len(data), data))
		return r.reply()
	}
	if got := bdat("From: a@example.com\r\n\r\nsmuggle\n.\nMAIL FROM:<x@y>\r\n"); !strings.HasPrefix(got, "550 5.6.0") {
		t.Fatalf("BDAT with bare LF: %q", got)
	}
	if got := bdat(simpleMsg); !strings.HasPrefix(got, "250 ") {
		t.Fatalf("BDAT: %q", got)
	}
	if envs, _ := ts.messages(t); len(envs) != 1 {
		t.Fatalf("queued %d, want 1", len(envs))
	}
}

// TestDataTimeout: a client that stalls inside DATA is cut off after
// DataTimeout with a 4xx, and nothing is queued.
func TestDataTimeout(t *testing.T) {
	ts := startServer(t, Config{TrustedNetworks: loopbackNets(t), DataTimeout: 150 * time.Millisecond}, serverOpts{})
	r := dialRaw(t, ts.Addr)
	r.expect("220 ")
	r.write("EHLO x\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@dest.test>\r\nDATA\r\n")
	for range 4 {
		r.reply()
	}
	r.write("From: a@example.com\r\n\r\nhalf a message")
	start := time.Now()
	if got := r.reply(); got[0] != '4' {
		t.Fatalf("stalled DATA answered %q", got)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cut off after %v", d)
	}
	if envs, _ := ts.messages(t); len(envs) != 0 {
		t.Fatal("a cut-off message was queued")
	}
}

// TestBufferedBytesLimit: message data held in memory by all sessions
// together is bounded; past the bound DATA gets 451 4.3.2 and the
// budget is given back afterwards.
func TestBufferedBytesLimit(t *testing.T) {
	ts := startServer(t, Config{TrustedNetworks: loopbackNets(t), MaxBufferedBytes: 300}, serverOpts{})
	big := "From: a@example.com\r\n\r\n" + strings.Repeat("0123456789012345678901234567890123456789\r\n", 10)
	c := ts.dial(t)
	err := smtptest.Send(c, "a@example.com", []string{"x@dest.test"}, big)
	wantCode(t, err, 451, "DATA over the memory budget")
	c.Reset()
	if err := smtptest.Send(c, "a@example.com", []string{"x@dest.test"}, simpleMsg); err != nil {
		t.Fatalf("small message after the refusal: %v", err)
	}
	if got := ts.buffered.Load(); got != 0 {
		t.Errorf("%d bytes still counted", got)
	}
}

// TestLongLine: a line past go-smtp's 2000-octet limit is refused
// permanently (a 4xx would make the client retry the same message
// forever).
func TestLongLine(t *testing.T) {
	ts := startServer(t, Config{TrustedNetworks: loopbackNets(t)}, serverOpts{})
	err := smtptest.Send(ts.dial(t), "a@example.com", []string{"x@dest.test"}, "From: a@example.com\r\n\r\n"+strings.Repeat("x", 3000)+"\r\n")
	wantCode(t, err, 550, "3000-octet line")
	if envs, _ := ts.messages(t); len(envs) != 0 {
		t.Fatal("queued")
	}
}
