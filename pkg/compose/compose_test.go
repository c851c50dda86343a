package compose

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
	"testing"
	"time"
)

var date = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

// parts walks a MIME tree and returns the decoded leaf parts.
func parts(t *testing.T, h mail.Header, body io.Reader) []leaf {
	t.Helper()
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		t.Fatalf("content-type %q: %v", h.Get("Content-Type"), err)
	}
	if !strings.HasPrefix(mt, "multipart/") {
		return []leaf{decodeLeaf(t, mt, h.Get("Content-Disposition"), h.Get("Content-Transfer-Encoding"), body)}
	}
	var out []leaf
	mr := multipart.NewReader(body, params["boundary"])
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, parts(t, mail.Header(p.Header), p)...)
	}
}

type leaf struct {
	Type, Disposition string
	Data              []byte
}

func decodeLeaf(t *testing.T, typ, disp, cte string, r io.Reader) leaf {
	t.Helper()
	var data []byte
	var err error
	switch strings.ToLower(cte) {
	case "base64":
		data, err = io.ReadAll(newBase64(r))
	case "quoted-printable":
		data, err = io.ReadAll(newQP(r))
	default:
		data, err = io.ReadAll(r)
	}
	if err != nil {
		t.Fatalf("decode %s: %v", cte, err)
	}
	return leaf{typ, disp, data}
}

func TestBuildWithAttachmentsRoundTrips(t *testing.T) {
	bin := make([]byte, 3000)
	for i := range bin {
		bin[i] = byte(i * 7)
	}
	m := &Message{
		From:    "Zoë Sender <zoe@example.com>",
		To:      []string{"a@example.org, B <b@example.org>"},
		Cc:      []string{"c@example.net"},
		Bcc:     []string{"hidden@example.net"},
		Subject: "Grüße aus Köln — a long subject line that certainly needs folding because it is long",
		Text:    "Hallo,\nhier sind die Dateien. Ümlaut.\n",
		HTML:    "<p>Hallo <b>Welt</b></p>",
		Attachments: []Attachment{
			{Filename: "/tmp/report.pdf", Data: []byte("%PDF-1.4 fake")},
			{Filename: "data.bin", Data: bin},
			{Filename: "naïve.txt", Data: []byte("plain text\r\n")},
		},
		Headers: []Header{{"X-Campaign", "winter"}},
		Date:    date,
	}
	raw, err := m.Build()
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(string(raw), "\r\n") {
		if len(line) > 998 {
			t.Errorf("line %d longer than 998", i)
		}
		if strings.Contains(line, "\n") {
			t.Fatalf("bare LF in line %d", i)
		}
	}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	dec := new(mime.WordDecoder)
	subj, err := dec.DecodeHeader(msg.Header.Get("Subject"))
	if err != nil || subj != m.Subject {
		t.Errorf("subject %q (%v), want %q", subj, err, m.Subject)
	}
	from, err := msg.Header.AddressList("From")
	if err != nil || from[0].Name != "Zoë Sender" {
		t.Errorf("from %v %v", from, err)
	}
	if msg.Header.Get("Bcc") != "" || bytes.Contains(raw, []byte("hidden@")) {
		t.Error("Bcc leaked into the message")
	}
	if msg.Header.Get("Date") != "Sun, 29 Nov 2026 12:00:00 +0000" {
		t.Errorf("date %q", msg.Header.Get("Date"))
	}
	if id := msg.Header.Get("Message-ID"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@example.com>") {
		t.Errorf("message-id %q", id)
	}
	if msg.Header.Get("X-Campaign") != "winter" {
		t.Error("extra header missing")
	}
	got := parts(t, msg.Header, msg.Body)
	if len(got) != 5 {
		t.Fatalf("%d leaf parts, want 5: %+v", len(got), got)
	}
	if !strings.HasPrefix(got[0].Type, "text/plain") || string(got[0].Data) != "Hallo,\r\nhier sind die Dateien. Ümlaut.\r\n" {
		t.Errorf("text part %q %q", got[0].Type, got[0].Data)
	}
	if got[1].Type != "text/html" || string(got[1].Data) != "<p>Hallo <b>Welt</b></p>\r\n" {
		t.Errorf("html part %q %q", got[1].Type, got[1].Data)
	}
	if got[2].Type != "application/pdf" || string(got[2].Data) != "%PDF-1.4 fake" {
		t.Errorf("pdf part %q %q", got[2].Type, got[2].Data)
	}
	if !bytes.Equal(got[3].Data, bin) || got[3].Type != "application/octet-stream" {
		t.Errorf("binary attachment differs (type %q)", got[3].Type)
	}
	_, dp, err := mime.ParseMediaType(got[4].Disposition)
	if err != nil || dp["filename"] != "naïve.txt" || string(got[4].Data) != "plain text\r\n" {
		t.Errorf("txt attachment %q %v %q", got[4].Disposition, err, got[4].Data)
	}
	_, rcpts, _ := m.Envelope()
	if strings.Join(rcpts, ",") != "a@example.org,b@example.org,c@example.net,hidden@example.net" {
		t.Errorf("envelope recipients %v", rcpts)
	}
}

func TestBuildShapes(t *testing.T) {
	for _, tc := range []struct {
		name, text, html, want string
	}{
		{"text", "hi", "", "text/plain"},
		{"html", "", "<p>hi</p>", "text/html"},
		{"both", "hi", "<p>hi</p>", "multipart/alternative"},
		{"empty", "", "", "text/plain"},
	} {
		m := &Message{From: "a@example.com", To: []string{"b@example.com"}, Text: tc.text, HTML: tc.html, Date: date}
		raw, err := m.Build()
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := mail.ReadMessage(bytes.NewReader(raw))
		mt, _, _ := mime.ParseMediaType(msg.Header.Get("Content-Type"))
		if mt != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, mt, tc.want)
		}
	}
}

func TestInjectionRefused(t *testing.T) {
	base := func() *Message {
		return &Message{From: "a@example.com", To: []string{"b@example.com"}, Subject: "s", Date: date}
	}
	for name, mut := range map[string]func(*Message){
		"subject":  func(m *Message) { m.Subject = "hi\r\nBcc: victim@example.org" },
		"subj-lf":  func(m *Message) { m.Subject = "hi\nBcc: victim@example.org" },
		"from":     func(m *Message) { m.From = "a@example.com\nBcc: v@example.org" },
		"to":       func(m *Message) { m.To = []string{"b@example.com\r\nX: y"} },
		"header":   func(m *Message) { m.Headers = []Header{{"X-A", "v\rX-B: w"}} },
		"replyto":  func(m *Message) { m.ReplyTo = "r@example.com\nX: y" },
		"filename": func(m *Message) { m.Attachments = []Attachment{{Filename: "a\r\nb.txt"}} },
	} {
		m := base()
		mut(m)
		if _, err := m.Build(); !errors.Is(err, ErrInjection) {
			t.Errorf("%s: err %v, want ErrInjection", name, err)
		}
	}
	if _, err := ParseHeader("X-A: b\r\nBcc: c"); !errors.Is(err, ErrInjection) {
		t.Errorf("ParseHeader: %v", err)
	}
}

func TestInvalidInput(t *testing.T) {
	for name, m := range map[string]*Message{
		"no rcpt":    {From: "a@example.com"},
		"bad from":   {From: "not an address", To: []string{"b@example.com"}},
		"two from":   {From: "a@example.com, c@example.com", To: []string{"b@example.com"}},
		"bad header": {From: "a@example.com", To: []string{"b@example.com"}, Headers: []Header{{"Bad Name", "x"}}},
		"structural": {From: "a@example.com", To: []string{"b@example.com"}, Headers: []Header{{"Content-Type", "text/plain"}}},
		"bad utf8":   {From: "a@example.com", To: []string{"b@example.com"}, Text: "\xff"},
	} {
		if _, err := m.Build(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err %v, want ErrInvalid", name, err)
		}
	}
	if _, err := ParseHeader("no colon"); !errors.Is(err, ErrInvalid) {
		t.Error("ParseHeader without colon accepted")
	}
}

func TestUserHeaderReplacesOurs(t *testing.T) {
	m := &Message{From: "a@example.com", To: []string{"b@example.com"}, Subject: "x", Date: date,
		Headers: []Header{{"Message-ID", "<fixed@example.com>"}, {"Comments", "one"}, {"Comments", "two"}}}
	raw, err := m.Build()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Count(raw, []byte("Message-ID:")) != 1 || !bytes.Contains(raw, []byte("Message-ID: <fixed@example.com>")) {
		t.Errorf("message-id not replaced:\n%s", raw)
	}
	if bytes.Count(raw, []byte("Comments:")) != 2 {
		t.Error("repeatable field collapsed")
	}
}

func TestLongASCIILineUsesQuotedPrintable(t *testing.T) {
	m := &Message{From: "a@example.com", To: []string{"b@example.com"}, Text: strings.Repeat("x", 2000), Date: date}
	raw, _ := m.Build()
	if !bytes.Contains(raw, []byte("quoted-printable")) {
		t.Error("long line sent as 7bit")
	}
}

func TestDetectType(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"a.png", nil, "image/png"},
		{"A.PDF", nil, "application/pdf"},
		{"noext", []byte("\x89PNG\r\n\x1a\n0000"), "image/png"},
		{"noext", []byte("hello world"), "text/plain; charset=utf-8"},
		{"noext", []byte{0, 1, 2, 3}, "application/octet-stream"},
	} {
		if got := DetectType(tc.name, tc.data); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestExistingMessage(t *testing.T) {
	in := "From: App <app@example.com>\nTo: a@example.org, b@example.org\nCc: c@example.org\nBcc: secret@example.org,\n  other@example.org\nSubject: hi\n\nbody line\n"
	e, err := ParseMessage([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	rcpts, err := e.Recipients()
	if err != nil || strings.Join(rcpts, ",") != "a@example.org,b@example.org,c@example.org,secret@example.org,other@example.org" {
		t.Fatalf("recipients %v %v", rcpts, err)
	}
	e.StripBcc()
	if err := e.AddMissing(date, "", "host.example"); err != nil {
		t.Fatal(err)
	}
	out := string(e.Bytes())
	if strings.Contains(out, "secret") || strings.Contains(out, "other@") {
		t.Errorf("Bcc not stripped:\n%s", out)
	}
	if !strings.HasPrefix(out, "Date: Sun, 29 Nov 2026 12:00:00 +0000\r\nMessage-ID: <") || !strings.HasSuffix(out, "\r\n\r\nbody line\r\n") {
		t.Errorf("unexpected message:\n%q", out)
	}
	if from, _ := e.From(); from != "app@example.com" {
		t.Errorf("from %q", from)
	}
	if _, err := ParseMessage([]byte("just a body without header\n")); err == nil {
		t.Error("header-less message accepted")
	}
}

func FuzzBuild(f *testing.F) {
	f.Add("a@example.com", "b@example.com", "Subject", "text", "<p>x</p>", "f.txt", []byte("data"), "X-A: b")
	f.Add("Zoë <z@example.com>", "b@example.com, c@example.com", "Grüße\r\nBcc: x", "ü", "", "ä.bin", []byte{0, 1}, "Bad Name: x")
	f.Fuzz(func(t *testing.T, from, to, subject, text, html, fname string, data []byte, hdr string) {
		m := &Message{From: from, To: []string{to}, Subject: subject, Text: text, HTML: html, Date: date}
		if fname != "" {
			m.Attachments = []Attachment{{Filename: fname, Data: data}}
		}
		if h, err := ParseHeader(hdr); err == nil {
			m.Headers = []Header{h}
		}
		raw, err := m.Build()
		if err != nil {
			return
		}
		msg, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("built message does not parse: %v\n%q", err, raw)
		}
		for k := range msg.Header {
			switch k {
			case "Date", "From", "To", "Subject", "Message-Id", "Mime-Version", "Content-Type", "Content-Transfer-Encoding":
			default:
				if len(m.Headers) == 0 || !strings.EqualFold(k, m.Headers[0].Name) {
					t.Fatalf("unexpected header field %q (injection?)\n%q", k, raw)
				}
			}
		}
		parts(t, msg.Header, msg.Body)
	})
}

func FuzzParseMessage(f *testing.F) {
	f.Add([]byte("From: a@example.com\nTo: b@example.com\nBcc: c@example.com\n\nbody\n"))
	f.Add([]byte("To: \"x\" <a@b>,\r\n\tc@d\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseMessage(data)
		if err != nil {
			return
		}
		_, _ = e.Recipients()
		e.StripBcc()
		if err := e.AddMissing(date, "a@example.com", "h"); err != nil {
			t.Fatal(err)
		}
		if e2, err := ParseMessage(e.Bytes()); err == nil && e2.Header.Get("Bcc") != "" {
			t.Fatalf("Bcc survived: %q", e.Bytes())
		}
	})
}
