package dsn

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"strings"
	"testing"
	"time"
)

const original = "From: app@example.org\r\nTo: a@example.com\r\nSubject: Invoice 42\r\nMessage-ID: <42@example.org>\r\n\r\nPlease pay.\r\n"

type part struct {
	ctype string
	body  string
}

func parse(t testing.TB, msg []byte) (*mail.Message, []part) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatalf("not a message: %v\n%s", err, msg)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("Content-Type = %q (%v)", m.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var parts []part
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("part: %v", err)
		}
		b, _ := io.ReadAll(p)
		parts = append(parts, part{p.Header.Get("Content-Type"), string(b)})
	}
	return m, parts
}

func fields(t testing.TB, ds string) []textproto.MIMEHeader {
	t.Helper()
	var out []textproto.MIMEHeader
	for _, block := range strings.Split(strings.TrimSpace(ds), "\r\n\r\n") {
		h := textproto.MIMEHeader{}
		for _, line := range strings.Split(block, "\r\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				t.Fatalf("bad field line %q", line)
			}
			h.Add(k, strings.TrimSpace(v))
		}
		out = append(out, h)
	}
	return out
}

func TestBounceHeaders(t *testing.T) {
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	msg, err := Build(Report{
		ReportingMTA: "relay.example.org",
		To:           "app@example.org",
		QueueID:      "Q1",
		EnvID:        "inv-42",
		Arrival:      at,
		Date:         at.Add(time.Minute),
		Recipients: []Recipient{{
			Address: "a@example.com", ORcpt: "rfc822;A@Example.com", Action: Failed,
			Status: "5.1.1", RemoteMTA: "mx.example.com", Diagnostic: "550 5.1.1 no such user\r\nInjected: x",
			LastAttempt: at.Add(time.Minute),
		}},
	}, strings.NewReader(original))
	if err != nil {
		t.Fatal(err)
	}
	m, parts := parse(t, msg)
	if m.Header.Get("Auto-Submitted") != "auto-replied" || !strings.Contains(m.Header.Get("From"), "MAILER-DAEMON@relay.example.org") {
		t.Fatalf("headers: %v", m.Header)
	}
	if m.Header.Get("Injected") != "" {
		t.Fatal("diagnostic text injected a header")
	}
	if len(parts) != 3 {
		t.Fatalf("%d parts", len(parts))
	}
	if !strings.Contains(parts[0].body, "no such user") || !strings.HasPrefix(parts[0].ctype, "text/plain") {
		t.Fatalf("human part: %q", parts[0].body)
	}
	if parts[1].ctype != "message/delivery-status" {
		t.Fatalf("part 2 type %q", parts[1].ctype)
	}
	f := fields(t, parts[1].body)
	if len(f) != 2 {
		t.Fatalf("%d field groups: %q", len(f), parts[1].body)
	}
	if f[0].Get("Reporting-MTA") != "dns; relay.example.org" || f[0].Get("Original-Envelope-Id") != "inv-42" || f[0].Get("Arrival-Date") == "" {
		t.Fatalf("per-message fields: %v", f[0])
	}
	want := map[string]string{
		"Original-Recipient": "rfc822; A@Example.com",
		"Final-Recipient":    "rfc822; a@example.com",
		"Action":             "failed",
		"Status":             "5.1.1",
		"Remote-Mta":         "dns; mx.example.com",
		"Diagnostic-Code":    "smtp; 550 5.1.1 no such user  Injected: x",
	}
	for k, v := range want {
		if got := f[1].Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	// Default (RET unset/HDRS): only the header comes back.
	if parts[2].ctype != "text/rfc822-headers" || strings.Contains(parts[2].body, "Please pay") || !strings.Contains(parts[2].body, "Subject: Invoice 42") {
		t.Fatalf("part 3: %q %q", parts[2].ctype, parts[2].body)
	}
}

func TestReturnFullAndDelay(t *testing.T) {
	msg, err := Build(Report{ReportingMTA: "r", To: "s@x", ReturnFull: true,
		Recipients: []Recipient{{Address: "a@y", Action: Failed}}}, strings.NewReader(original))
	if err != nil {
		t.Fatal(err)
	}
	_, parts := parse(t, msg)
	if parts[2].ctype != "message/rfc822" || !strings.Contains(parts[2].body, "Please pay") {
		t.Fatalf("RET=FULL part: %q", parts[2])
	}
	if f := fields(t, parts[1].body); f[1].Get("Status") != "5.0.0" {
		t.Fatalf("derived status %q", f[1].Get("Status"))
	}
	// Too big for RET=FULL → headers.
	msg, _ = Build(Report{ReportingMTA: "r", To: "s@x", ReturnFull: true, MaxReturn: 10,
		Recipients: []Recipient{{Address: "a@y", Action: Failed}}}, strings.NewReader(original))
	if _, parts = parse(t, msg); parts[2].ctype != "text/rfc822-headers" {
		t.Fatalf("oversize original returned in full")
	}
	// A delay report never returns the body.
	until := time.Date(2026, 3, 6, 0, 0, 0, 0, time.UTC)
	msg, _ = Build(Report{ReportingMTA: "r", To: "s@x", ReturnFull: true,
		Recipients: []Recipient{{Address: "a@y", Action: Delayed, Status: "4.7.1", WillRetryUntil: until}}}, strings.NewReader(original))
	m, parts := parse(t, msg)
	if !strings.HasPrefix(m.Header.Get("Subject"), "Delayed") || parts[2].ctype != "text/rfc822-headers" {
		t.Fatalf("delay: %q %q", m.Header.Get("Subject"), parts[2].ctype)
	}
	if f := fields(t, parts[1].body); f[1].Get("Will-Retry-Until") == "" || f[1].Get("Action") != "delayed" {
		t.Fatalf("delay fields %v", f[1])
	}
	if _, err := Build(Report{}, nil); err != ErrNoRecipients {
		t.Fatalf("empty report: %v", err)
	}
}

// FuzzBuild: whatever the original message and the remote's reply hold,
// the report is a well-formed multipart/report with CRLF line endings.
func FuzzBuild(f *testing.F) {
	f.Add([]byte(original), "550 5.1.1 no such user", "rfc822;a@b", true)
	f.Add([]byte("no header at all"), "", "", false)
	f.Add([]byte("A: b\n\nbare\rcr\n.\n"), "451 4.7.1 \r\nX: y", "utf-8;\x00", true)
	f.Add([]byte{}, "\xff\xfe", ";", true)
	f.Fuzz(func(t *testing.T, orig []byte, diag, orc string, full bool) {
		msg, err := Build(Report{ReportingMTA: "r.test", To: "s@x", ReturnFull: full, EnvID: diag,
			Recipients: []Recipient{{Address: "a@y", ORcpt: orc, Action: Failed, Diagnostic: diag}}}, bytes.NewReader(orig))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(bytes.ReplaceAll(msg, []byte("\r\n"), nil), []byte("\n")) || bytes.Contains(bytes.ReplaceAll(msg, []byte("\r\n"), nil), []byte("\r")) {
			t.Fatal("bare CR or LF in report")
		}
		_, parts := parse(t, msg)
		if len(parts) != 3 {
			t.Fatalf("%d parts", len(parts))
		}
		if f := fields(t, parts[1].body); len(f) != 2 || f[1].Get("Action") != "failed" {
			t.Fatalf("fields %v", f)
		}
	})
}
