package send_test

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relayctl/relayctl/cmd"
	"github.com/relayctl/relayctl/cmd/cmdtest"
	"github.com/relayctl/relayctl/pkg/dnstest"
	"github.com/relayctl/relayctl/pkg/smtptest"
)

func write(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSendWithAttachmentsArrivesIntact(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{StartTLS: true, Users: map[string]string{"app": "pw"}})
	pdf := append([]byte("%PDF-1.7\n"), bytes.Repeat([]byte{0, 0xff, 0x80, '\n', '.', '\r'}, 500)...)
	pdfPath := write(t, "invoice.pdf", pdf)
	htmlPath := write(t, "body.html", []byte("<p>Danke für Ihren Einkauf</p>"))
	t.Setenv("RELAYCTL_PASSWORD", "pw")
	r := cmdtest.Run(t, "--json", "send", "--server", srv.Addr, "--user", "app", "--insecure-skip-verify",
		"--from", "Shop <shop@example.com>", "--to", "kunde@example.org", "--bcc", "archive@example.com",
		"--subject", "Ihre Rechnung – Nr. 42", "--body", "Guten Tag,\nanbei die Rechnung.", "--html", htmlPath,
		"--attach", pdfPath, "--header", "X-Relayctl-Stream: transactional")
	if r.Code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	env := r.Envelope(t)
	var res struct {
		MessageID  string `json:"message_id"`
		TLS        bool   `json:"tls"`
		Recipients []struct {
			Address  string `json:"address"`
			Accepted bool   `json:"accepted"`
		} `json:"recipients"`
	}
	if err := json.Unmarshal(env.Result, &res); err != nil {
		t.Fatal(err)
	}
	if env.Status != "pass" || !res.TLS || len(res.Recipients) != 2 || !res.Recipients[1].Accepted || res.MessageID == "" {
		t.Fatalf("envelope %+v result %s", env, env.Result)
	}
	got := srv.Wait(t, 1, 5*time.Second)[0]
	if got.From != "shop@example.com" || strings.Join(got.To, ",") != "kunde@example.org,archive@example.com" || !got.TLS || got.User != "app" {
		t.Errorf("envelope %q %v tls=%v user=%q", got.From, got.To, got.TLS, got.User)
	}
	if bytes.Contains(got.Data, []byte("archive@")) {
		t.Error("Bcc recipient visible in the message")
	}
	msg, err := mail.ReadMessage(bytes.NewReader(got.Data))
	if err != nil {
		t.Fatal(err)
	}
	subj, _ := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if subj != "Ihre Rechnung – Nr. 42" || msg.Header.Get("X-Relayctl-Stream") != "transactional" {
		t.Errorf("subject %q", subj)
	}
	_, params, _ := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var attachment []byte
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if p.FileName() == "invoice.pdf" {
			if p.Header.Get("Content-Type") != `application/pdf; name=invoice.pdf` {
				t.Errorf("attachment type %q", p.Header.Get("Content-Type"))
			}
			attachment, _ = io.ReadAll(p) // multipart decodes base64? no: raw
		}
	}
	if attachment == nil {
		t.Fatal("attachment missing")
	}
	dec, err := decodeBase64(attachment)
	if err != nil || !bytes.Equal(dec, pdf) {
		t.Errorf("attachment differs after transit (%v)", err)
	}
}

func TestSendRefusedRecipientExit1(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	srv.SetHook(func(c, arg string) error {
		if c == "RCPT" && arg == "gone@example.org" {
			return smtptest.Reply(550, [3]int{5, 1, 1}, "user unknown")
		}
		return nil
	})
	r := cmdtest.Run(t, "send", "--server", srv.Addr, "--from", "a@example.com", "--to", "ok@example.org,gone@example.org", "--subject", "x", "--body", "y")
	if r.Code != 1 {
		t.Fatalf("exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	for _, want := range []string{"accepted ok@example.org", "refused  gone@example.org", "550 5.1.1 user unknown", "queued"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.Stdout)
		}
	}
	for _, l := range strings.Split(r.Stdout, "\n") {
		if len([]rune(l)) > 80 {
			t.Errorf("line over 80 columns: %q", l)
		}
	}
}

func deadAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}

func TestSendUnreachableExit3(t *testing.T) {
	r := cmdtest.Run(t, "--json", "send", "--server", deadAddr(t), "--from", "a@example.com", "--to", "b@example.org", "--body", "x")
	if r.Code != 3 {
		t.Fatalf("exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if e := r.Envelope(t); e.Status != "error" || !e.Has("send.unreachable") {
		t.Errorf("%+v", e)
	}
}

func TestSendInjectionExit2(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	for _, args := range [][]string{
		{"--subject", "hi\r\nBcc: victim@example.org"},
		{"--header", "X-A: b\nBcc: victim@example.org"},
		{"--to", "b@example.org\nBcc: victim@example.org"},
		{"--header", "Content-Type: text/html"},
	} {
		full := append([]string{"send", "--server", srv.Addr, "--from", "a@example.com", "--to", "b@example.org", "--body", "x"}, args...)
		r := cmdtest.Run(t, full...)
		if r.Code != 2 || strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 {
			t.Errorf("%v: exit %d stderr %q", args, r.Code, r.Stderr)
		}
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("%d message(s) sent despite injection", n)
	}
}

func TestSendUsage(t *testing.T) {
	for _, args := range [][]string{
		{"send", "--to", "b@example.org"},
		{"send", "--from", "a@example.com"},
		{"send", "--from", "a@example.com", "--to", "b@example.org", "--eml", "-", "--subject", "x"},
		{"send", "--from", "a@example.com", "--to", "b@example.org", "-t"},
		{"send", "--from", "a@example.com", "--to", "b@example.org", "--attach", "/nonexistent"},
		{"send", "--from", "a@example.com", "--to", "b@example.org", "--user", "u"},
	} {
		if r := cmdtest.Run(t, args...); r.Code != 2 {
			t.Errorf("%v: exit %d (%s)", args, r.Code, r.Stderr)
		}
	}
}

func TestSendEMLExtractRecipients(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	eml := "From: App <app@example.com>\nTo: a@example.org\nBcc: b@example.org\nSubject: ready\n\nbody\n"
	r := cmdtest.RunStdin(t, strings.NewReader(eml), "send", "--server", srv.Addr, "--eml", "-", "-t")
	if r.Code != 0 {
		t.Fatalf("exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	got := srv.Wait(t, 1, 5*time.Second)[0]
	if got.From != "app@example.com" || strings.Join(got.To, ",") != "a@example.org,b@example.org" {
		t.Errorf("envelope %q %v", got.From, got.To)
	}
	if bytes.Contains(got.Data, []byte("Bcc:")) || !bytes.Contains(got.Data, []byte("Message-ID: <")) || !bytes.Contains(got.Data, []byte("Date: ")) {
		t.Errorf("message:\n%s", got.Data)
	}
}

func TestSendmailT(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	t.Setenv("RELAYCTL_SEND_SERVER", srv.Addr)
	in := "To: ops@example.org\nCc: dev@example.org\nBcc: audit@example.org\nSubject: cron output\n\nline\n.\nafter dot\n"
	r := cmdtest.RunStdin(t, strings.NewReader(in), "sendmail", "-t", "-i", "-f", "cron@example.com", "-F", "Cron Daemon")
	if r.Code != 0 {
		t.Fatalf("exit %d %s", r.Code, r.Stderr)
	}
	got := srv.Wait(t, 1, 5*time.Second)[0]
	if got.From != "cron@example.com" || strings.Join(got.To, ",") != "ops@example.org,dev@example.org,audit@example.org" {
		t.Errorf("envelope %q %v", got.From, got.To)
	}
	if !bytes.Contains(got.Data, []byte("after dot")) || bytes.Contains(got.Data, []byte("audit@")) {
		t.Errorf("message:\n%s", got.Data)
	}
	if !bytes.Contains(got.Data, []byte(`From: "Cron Daemon" <cron@example.com>`)) {
		t.Errorf("From not added:\n%s", got.Data)
	}
}

func TestSendmailDotEndsWithoutI(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	t.Setenv("RELAYCTL_SEND_SERVER", srv.Addr)
	r := cmdtest.RunStdin(t, strings.NewReader("Subject: s\n\nkept\n.\ndropped\n"), "sendmail", "-oem", "root@example.org")
	if r.Code != 0 {
		t.Fatalf("exit %d %s", r.Code, r.Stderr)
	}
	got := srv.Wait(t, 1, 5*time.Second)[0]
	if !bytes.Contains(got.Data, []byte("kept")) || bytes.Contains(got.Data, []byte("dropped")) {
		t.Errorf("message:\n%s", got.Data)
	}
}

func TestSendmailExitCodes(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	srv.SetHook(func(c, arg string) error {
		switch arg {
		case "gone@example.org":
			return smtptest.Reply(550, [3]int{5, 1, 1}, "no such user")
		case "later@example.org":
			return smtptest.Reply(451, [3]int{4, 3, 0}, "try later")
		}
		return nil
	})
	msg := "Subject: s\n\nbody\n"
	for _, tc := range []struct {
		env  string
		args []string
		in   string
		want int
	}{
		{deadAddr(t), []string{"-i", "ops@example.org"}, msg, 75},
		{srv.Addr, []string{"-i", "gone@example.org"}, msg, 67},
		{srv.Addr, []string{"-i", "later@example.org", "gone@example.org"}, msg, 75},
		{srv.Addr, []string{"-i"}, msg, 64},
		{srv.Addr, []string{"-t", "-i"}, msg, 65},
		{srv.Addr, []string{"-bp"}, msg, 64},
		{srv.Addr, []string{"-Z"}, msg, 64},
		{srv.Addr, []string{"-f"}, msg, 64},
		{srv.Addr, []string{"-i", "ops@example.org"}, "no header at all\n", 65},
		{srv.Addr, []string{"-i", "ops@example.org"}, msg, 0},
	} {
		t.Setenv("RELAYCTL_SEND_SERVER", tc.env)
		r := cmdtest.RunStdin(t, strings.NewReader(tc.in), append([]string{"sendmail"}, tc.args...)...)
		if r.Code != tc.want {
			t.Errorf("%v: exit %d, want %d (%s)", tc.args, r.Code, tc.want, r.Stderr)
		}
		if tc.want != 0 && !strings.HasPrefix(r.Stderr, "sendmail: ") {
			t.Errorf("%v: stderr %q", tc.args, r.Stderr)
		}
	}
}

func TestArgv0Sendmail(t *testing.T) {
	if got := cmd.Args("/usr/sbin/sendmail", []string{"-t", "-i"}); strings.Join(got, " ") != "sendmail -t -i" {
		t.Errorf("%v", got)
	}
	if got := cmd.Args("relayctl", []string{"send"}); strings.Join(got, " ") != "send" {
		t.Errorf("%v", got)
	}
}

func TestSendDirect(t *testing.T) {
	mx := smtptest.Start(t, smtptest.Options{StartTLS: true})
	mx.SetHook(func(c, arg string) error {
		switch {
		case c == "RCPT" && arg == "gone@dest.test":
			return smtptest.Reply(550, [3]int{5, 1, 1}, "no such user")
		case c == "RCPT" && arg == "busy@dest.test":
			return smtptest.Reply(451, [3]int{4, 2, 1}, "mailbox busy")
		}
		return nil
	})
	_, port, _ := net.SplitHostPort(mx.Addr)
	dns := dnstest.Start(t, "dest.test. IN MX 10 mx.dest.test.\nmx.dest.test. IN A 127.0.0.1\n")
	base := []string{"--resolver", dns.Addr(), "send", "--direct", "--delivery-port", port, "--from", "a@example.com", "--subject", "direct", "--body", "hi"}

	r := cmdtest.Run(t, append(base, "--to", "ok@dest.test")...)
	if r.Code != 0 || !strings.Contains(r.Stdout, "delivered ok@dest.test  mx.dest.test (TLS)") {
		t.Fatalf("exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if got := mx.Wait(t, 1, 5*time.Second)[0]; got.To[0] != "ok@dest.test" || !got.TLS {
		t.Errorf("received %+v", got)
	}

	r = cmdtest.Run(t, append([]string{"--json"}, append(base, "--to", "gone@dest.test", "--to", "busy@dest.test")...)...)
	if r.Code != 1 {
		t.Fatalf("exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	e := r.Envelope(t)
	if !e.Has("send.refused") || !e.Has("send.unreachable") || !strings.Contains(r.Stdout, "550 5.1.1 no such user") {
		t.Errorf("%s", r.Stdout)
	}

	r = cmdtest.Run(t, append(base, "--to", "busy@dest.test")...)
	if r.Code != 3 || !strings.Contains(r.Stdout, "deferred  busy@dest.test") {
		t.Errorf("temporary only: exit %d\n%s", r.Code, r.Stdout)
	}
	r = cmdtest.Run(t, append(base, "--to", "x@nxdomain.test")...)
	if r.Code != 1 {
		t.Errorf("no such domain: exit %d\n%s", r.Code, r.Stdout)
	}
	if r := cmdtest.Run(t, append(base, "--to", "ok@dest.test", "--server", "x:25")...); r.Code != 2 {
		t.Errorf("--server with --direct: exit %d", r.Code)
	}
}

func TestSendDefaultsToTheConfiguredRelay(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	_, port, _ := net.SplitHostPort(srv.Addr)
	cfg := write(t, "c.yaml", []byte("serve:\n  listen:\n    - addr: 0.0.0.0:"+port+"\n      mode: plain\n"))
	r := cmdtest.Run(t, "--config", cfg, "send", "--from", "a@example.com", "--to", "b@example.org", "--body", "x")
	if r.Code != 0 {
		t.Fatalf("exit %d %s %s", r.Code, r.Stdout, r.Stderr)
	}
	srv.Wait(t, 1, 5*time.Second)
}
