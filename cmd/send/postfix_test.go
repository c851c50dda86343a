package send_test

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/relayctl/relayctl/cmd/cmdtest"
	"github.com/relayctl/relayctl/pkg/postfixtest"
)

// TestSendThroughPostfix: `relayctl send` submits to a real Postfix
// smtpd (a throw-away instance relaying to smtp-sink). Postfix accepts
// both messages, a ready one (--eml) arrives byte for byte behind
// Postfix's own Received field, and a composed one with a binary
// attachment parses as MIME with the attachment intact; sendmail -t -i
// (cron's way) gets through too.
func TestSendThroughPostfix(t *testing.T) {
	sk := postfixtest.StartSink(t)
	pf := postfixtest.Start(t, postfixtest.Options{RelayHost: sk.Addr})

	eml := "From: Shop <shop@example.com>\r\n" +
		"To: kunde@example.org\r\n" +
		"Subject: =?utf-8?q?Ihre_Rechnung_=E2=80=93_Nr=2E_42?=\r\n" +
		"Date: Sun, 29 Nov 2026 18:00:00 +0000\r\n" +
		"Message-ID: <eml.1@example.com>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"Content-Transfer-Encoding: 8bit\r\n" +
		"\r\n" +
		"Guten Tag,\r\n.\r\n..zwei Punkte\r\nGr\xc3\xbc\xc3\x9fe \t\r\n\r\n"
	r := cmdtest.Run(t, "send", "--server", pf.Addr, "--eml", write(t, "m.eml", []byte(eml)), "--from", "shop@example.com", "--to", "kunde@example.org")
	if r.Code != 0 {
		t.Fatalf("send --eml: exit %d\n%s%s\npostfix log:\n%s", r.Code, r.Stdout, r.Stderr, pf.Log())
	}
	if !strings.Contains(r.Stdout, "queued as") {
		t.Errorf("output does not quote Postfix's queue id:\n%s", r.Stdout)
	}

	pdf := append([]byte("%PDF-1.7\n"), bytes.Repeat([]byte{0, 0xff, 0x80, '\n', '.', '\r'}, 500)...)
	r = cmdtest.Run(t, "send", "--server", pf.Addr, "--from", "Shop <shop@example.com>", "--to", "kunde@example.org",
		"--subject", "Ihre Rechnung – Nr. 43", "--body", "Guten Tag,\nanbei die Rechnung.", "--attach", write(t, "invoice.pdf", pdf))
	if r.Code != 0 {
		t.Fatalf("send --attach: exit %d\n%s%s\npostfix log:\n%s", r.Code, r.Stdout, r.Stderr, pf.Log())
	}

	// sendmail mode as cron and PHP use it: LF line endings, a lone dot
	// that must not end the message (-i), recipients from the header (-t).
	t.Setenv("RELAYCTL_SEND_SERVER", pf.Addr)
	in := "To: ops@example.org\nBcc: audit@example.org\nSubject: cron output\n\nline\n.\nafter dot\n"
	r = cmdtest.RunStdin(t, strings.NewReader(in), "sendmail", "-t", "-i", "-f", "cron@example.com")
	if r.Code != 0 {
		t.Fatalf("sendmail -t: exit %d\n%s%s\npostfix log:\n%s", r.Code, r.Stdout, r.Stderr, pf.Log())
	}

	got := sk.Wait(t, 3, 8*time.Second)
	var viaEML, composed, cron *postfixtest.Message
	for i := range got {
		switch {
		case bytes.Contains(got[i].Data, []byte("<eml.1@example.com>")):
			viaEML = &got[i]
		case bytes.Contains(got[i].Data, []byte("Subject: cron output")):
			cron = &got[i]
		default:
			composed = &got[i]
		}
	}
	if viaEML == nil || composed == nil || cron == nil {
		t.Fatalf("captures: %d; ready message found %v, composed %v, sendmail %v", len(got), viaEML != nil, composed != nil, cron != nil)
	}
	rcpts := strings.Join(cron.Rcpts, "|") // Postfix sorts the recipients of a transaction
	if !strings.HasPrefix(cron.Mail, "<cron@example.com>") || len(cron.Rcpts) != 2 || !strings.Contains(rcpts, "<ops@example.org>") || !strings.Contains(rcpts, "<audit@example.org>") {
		t.Errorf("sendmail envelope as Postfix relayed it: mail %q rcpt %q", cron.Mail, cron.Rcpts)
	}
	if !bytes.HasSuffix(cron.Data, []byte("\r\n\r\nline\r\n.\r\nafter dot\r\n")) || bytes.Contains(cron.Data, []byte("audit@")) {
		t.Errorf("sendmail message after Postfix (Bcc must be gone, the lone dot kept):\n%s", cron.Data)
	}
	for _, m := range []*postfixtest.Message{viaEML, composed} {
		if m.Helo != pf.Hostname || !strings.HasPrefix(m.Mail, "<shop@example.com>") || len(m.Rcpts) != 1 || !strings.HasPrefix(m.Rcpts[0], "<kunde@example.org>") {
			t.Errorf("envelope as Postfix relayed it: helo %q mail %q rcpt %q", m.Helo, m.Mail, m.Rcpts)
		}
	}
	// Postfix prepends its Received field and changes nothing else.
	if !bytes.HasSuffix(viaEML.Data, []byte(eml)) {
		t.Errorf("ready message changed in transit:\nsent %q\ngot  %q", eml, viaEML.Data)
	} else if added := string(viaEML.Data[:len(viaEML.Data)-len(eml)]); !strings.HasPrefix(added, "Received: from ") || !strings.Contains(added, "by "+pf.Hostname+" (Postfix)") {
		t.Errorf("before the message: %q, want only Postfix's Received field", added)
	}

	msg, err := mail.ReadMessage(bytes.NewReader(composed.Data))
	if err != nil {
		t.Fatal(err)
	}
	subj, _ := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if subj != "Ihre Rechnung – Nr. 43" || msg.Header.Get("Message-Id") == "" || msg.Header.Get("Date") == "" {
		t.Errorf("headers after Postfix: subject %q, Message-ID %q, Date %q", subj, msg.Header.Get("Message-Id"), msg.Header.Get("Date"))
	}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
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
			raw, _ := io.ReadAll(p)
			attachment, err = decodeBase64(raw) // the decoder skips CR and LF
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if !bytes.Equal(attachment, pdf) {
		t.Errorf("attachment differs after Postfix (%d bytes, want %d)", len(attachment), len(pdf))
	}
	pf.WaitLog(t, "status=sent", 4, 5*time.Second) // one line per recipient
}
