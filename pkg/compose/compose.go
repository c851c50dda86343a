// Package compose builds an Internet message (RFC 5322) from parts given
// on a command line: addresses, a subject, a text and/or HTML body and
// attachments, as MIME (RFC 2045, RFC 2046 multipart/alternative and
// multipart/mixed), with non-ASCII header text as RFC 2047 encoded-words,
// attachment names per RFC 2231, and Content-Disposition per RFC 2183.
//
// It adds the Date and Message-ID fields RFC 5322 §3.6 asks an originator
// for, and refuses any field that holds a CR or LF: a value taken from a
// web form or a script must never be able to add header fields of its own
// ("header injection").
package compose

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/http"
	"net/mail"
	"net/textproto"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// ErrInjection is wrapped by every error about a CR or LF inside a field.
var ErrInjection = errors.New("compose: CR or LF in a header field (header injection refused)")

// ErrInvalid is wrapped by every other error about invalid input.
var ErrInvalid = errors.New("compose: invalid input")

// FieldError names the field an input error is about.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field string, sentinel error, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...))}
}

// Header is one extra header field given as "Name: value".
type Header struct {
	Name, Value string
}

// Attachment is one file attached to the message.
type Attachment struct {
	// Filename is the name the recipient sees (no directory part).
	Filename string
	// ContentType is the MIME type; "" → guessed by DetectType.
	ContentType string
	Data        []byte
}

// Message is what to compose.
type Message struct {
	From        string   // "Name <addr>" or "addr"
	To, Cc, Bcc []string // each may hold a comma-separated list
	ReplyTo     string
	Subject     string
	Text        string // text/plain body (UTF-8)
	HTML        string // text/html body (UTF-8); with Text → multipart/alternative
	Attachments []Attachment
	Headers     []Header
	// Date of the message; zero → time.Now().
	Date time.Time
	// MessageID without angle brackets; "" → generated from random bytes
	// and Hostname (or the From domain).
	MessageID string
	Hostname  string
}

// structural fields are written by Build itself and cannot be given as
// extra headers.
var structural = []string{"mime-version", "content-type", "content-transfer-encoding", "bcc"}

// ParseHeader parses "Name: value" as given to --header.
func ParseHeader(s string) (Header, error) {
	if strings.ContainsAny(s, "\r\n") {
		return Header{}, fieldErr("header", ErrInjection, "%q", s)
	}
	name, value, ok := strings.Cut(s, ":")
	if !ok {
		return Header{}, fieldErr("header", ErrInvalid, "%q is not \"Name: value\"", s)
	}
	h := Header{Name: strings.TrimSpace(name), Value: strings.TrimSpace(value)}
	if err := validName(h.Name); err != nil {
		return Header{}, err
	}
	return h, nil
}

// validName checks a field name: RFC 5322 §3.6.8 ftext, printable ASCII
// except colon.
func validName(name string) error {
	if name == "" {
		return fieldErr("header", ErrInvalid, "empty field name")
	}
	for _, c := range []byte(name) {
		if c < 33 || c > 126 || c == ':' {
			return fieldErr("header", ErrInvalid, "field name %q: only printable ASCII without colon is allowed (RFC 5322 §3.6.8)", name)
		}
	}
	return nil
}

func noCRLF(field, v string) error {
	if strings.ContainsAny(v, "\r\n") {
		return fieldErr(field, ErrInjection, "%q", v)
	}
	return nil
}

// ParseAddresses parses each value as an RFC 5322 address list.
func ParseAddresses(field string, values []string) ([]*mail.Address, error) {
	var out []*mail.Address
	for _, v := range values {
		if err := noCRLF(field, v); err != nil {
			return nil, err
		}
		if strings.TrimSpace(v) == "" {
			continue
		}
		list, err := mail.ParseAddressList(v)
		if err != nil {
			return nil, fieldErr(field, ErrInvalid, "%q: %v", v, err)
		}
		out = append(out, list...)
	}
	return out, nil
}

// Envelope returns the envelope sender and every recipient address (To,
// Cc and Bcc), without duplicates, in order.
func (m *Message) Envelope() (from string, rcpts []string, err error) {
	f, err := ParseAddresses("from", []string{m.From})
	if err != nil {
		return "", nil, err
	}
	if len(f) != 1 {
		return "", nil, fieldErr("from", ErrInvalid, "want exactly one address, got %d", len(f))
	}
	for _, field := range []struct {
		name string
		v    []string
	}{{"to", m.To}, {"cc", m.Cc}, {"bcc", m.Bcc}} {
		list, err := ParseAddresses(field.name, field.v)
		if err != nil {
			return "", nil, err
		}
		for _, a := range list {
			if !slices.ContainsFunc(rcpts, func(r string) bool { return strings.EqualFold(r, a.Address) }) {
				rcpts = append(rcpts, a.Address)
			}
		}
	}
	return f[0].Address, rcpts, nil
}

// Build returns the message in CRLF form, ready for SMTP DATA.
func (m *Message) Build() ([]byte, error) {
	for _, fv := range []struct{ field, v string }{{"from", m.From}, {"reply-to", m.ReplyTo}, {"subject", m.Subject}, {"message-id", m.MessageID}, {"hostname", m.Hostname}} {
		if err := noCRLF(fv.field, fv.v); err != nil {
			return nil, err
		}
	}
	from, rcpts, err := m.Envelope()
	if err != nil {
		return nil, err
	}
	if len(rcpts) == 0 {
		return nil, fieldErr("to", ErrInvalid, "no recipients")
	}
	for _, h := range m.Headers {
		if err := validName(h.Name); err != nil {
			return nil, err
		}
		if err := noCRLF("header "+h.Name, h.Value); err != nil {
			return nil, err
		}
		if slices.Contains(structural, strings.ToLower(h.Name)) {
			return nil, fieldErr("header", ErrInvalid, "%s is set by relayctl from the body and attachments and cannot be given", h.Name)
		}
	}
	for _, a := range m.Attachments {
		if err := noCRLF("attachment name", a.Filename); err != nil {
			return nil, err
		}
		if err := noCRLF("attachment type", a.ContentType); err != nil {
			return nil, err
		}
	}
	if !utf8.ValidString(m.Text) || !utf8.ValidString(m.HTML) {
		return nil, fieldErr("body", ErrInvalid, "the body is not valid UTF-8")
	}

	var b bytes.Buffer
	date := m.Date
	if date.IsZero() {
		date = time.Now()
	}
	id := m.MessageID
	if id == "" {
		host := m.Hostname
		if host == "" {
			host = from[strings.LastIndexByte(from, '@')+1:]
		}
		if id, err = NewMessageID(host); err != nil {
			return nil, err
		}
	}
	id = strings.Trim(id, "<>")

	// RFC 5322 §3.6: orig-date and from are required; the rest in the
	// customary order.
	fields := []Header{
		{"Date", date.Format(time.RFC1123Z)},
		{"From", addrList(m.From)},
	}
	if m.ReplyTo != "" {
		fields = append(fields, Header{"Reply-To", addrList(m.ReplyTo)})
	}
	if len(m.To) > 0 {
		fields = append(fields, Header{"To", addrList(m.To...)})
	}
	if len(m.Cc) > 0 {
		fields = append(fields, Header{"Cc", addrList(m.Cc...)})
	}
	fields = append(fields,
		Header{"Subject", mime.QEncoding.Encode("utf-8", m.Subject)},
		Header{"Message-ID", "<" + id + ">"},
	)
	for _, h := range m.Headers {
		v := mime.QEncoding.Encode("utf-8", h.Value)
		if i := slices.IndexFunc(fields, func(f Header) bool { return strings.EqualFold(f.Name, h.Name) }); i >= 0 && !isListField(h.Name) {
			fields[i].Value = v // the user's value replaces ours
			continue
		}
		fields = append(fields, Header{h.Name, v})
	}
	fields = append(fields, Header{"MIME-Version", "1.0"})
	for _, f := range fields {
		writeField(&b, f.Name, f.Value)
	}
	if err := m.writeBody(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// isListField: fields a user may give more than once (a second Received:
// or a Comments: adds, never replaces).
func isListField(name string) bool {
	switch strings.ToLower(name) {
	case "comments", "keywords", "received":
		return true
	}
	return false
}

// addrList re-renders address lists in canonical form (names encoded per
// RFC 2047 by net/mail); values were validated by Envelope.
func addrList(values ...string) string {
	list, _ := ParseAddresses("", values)
	parts := make([]string, len(list))
	for i, a := range list {
		parts[i] = a.String()
	}
	return strings.Join(parts, ", ")
}

// NewMessageID returns "random@host" (RFC 5322 §3.6.4 msg-id without the
// angle brackets).
func NewMessageID(host string) (string, error) {
	var r [16]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", fmt.Errorf("compose: message-id: %w", err)
	}
	if host == "" {
		host = "localhost"
	}
	return hex.EncodeToString(r[:]) + "@" + host, nil
}

// writeField writes "Name: value" folded at whitespace so lines stay
// within 78 characters where the value allows (RFC 5322 §2.2.3).
func writeField(b *bytes.Buffer, name, value string) {
	line := name + ":"
	for i, word := range strings.Fields(value) {
		if i > 0 && len(line)+1+len(word) > 78 {
			b.WriteString(line + "\r\n")
			line = " " + word
			continue
		}
		line += " " + word
	}
	b.WriteString(line + "\r\n")
}

// writeBody writes the MIME header fields of the body and the body.
func (m *Message) writeBody(b *bytes.Buffer) error {
	if len(m.Attachments) == 0 {
		return writeAlternative(b, m.Text, m.HTML, true)
	}
	mw := multipart.NewWriter(b)
	fmt.Fprintf(b, "Content-Type: multipart/mixed; boundary=%q\r\n\r\n", mw.Boundary())
	b.WriteString("This is a multi-part message in MIME format.\r\n")
	var inner bytes.Buffer
	if err := writeAlternative(&inner, m.Text, m.HTML, false); err != nil {
		return err
	}
	hdr, body, _ := bytes.Cut(inner.Bytes(), []byte("\r\n\r\n"))
	pw, err := mw.CreatePart(parseHeader(hdr))
	if err != nil {
		return fmt.Errorf("compose: %w", err)
	}
	pw.Write(body)
	for _, a := range m.Attachments {
		if err := writeAttachment(mw, a); err != nil {
			return err
		}
	}
	return mw.Close()
}

func parseHeader(hdr []byte) textproto.MIMEHeader {
	h := textproto.MIMEHeader{}
	for _, line := range strings.Split(string(hdr), "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			h.Set(k, strings.TrimSpace(v))
		}
	}
	return h
}

// writeAlternative writes text and/or html: one part alone, both as
// multipart/alternative with the plain text first (RFC 2046 §5.1.4: the
// last part is the preferred one). top adds the preamble.
func writeAlternative(b *bytes.Buffer, text, html string, top bool) error {
	switch {
	case html == "":
		return writeText(b, "text/plain", text)
	case text == "":
		return writeText(b, "text/html", html)
	}
	mw := multipart.NewWriter(b)
	fmt.Fprintf(b, "Content-Type: multipart/alternative; boundary=%q\r\n\r\n", mw.Boundary())
	if top {
		b.WriteString("This is a multi-part message in MIME format.\r\n")
	}
	for _, p := range []struct{ typ, body string }{{"text/plain", text}, {"text/html", html}} {
		var part bytes.Buffer
		if err := writeText(&part, p.typ, p.body); err != nil {
			return err
		}
		hdr, body, _ := bytes.Cut(part.Bytes(), []byte("\r\n\r\n"))
		pw, err := mw.CreatePart(parseHeader(hdr))
		if err != nil {
			return fmt.Errorf("compose: %w", err)
		}
		pw.Write(body)
	}
	return mw.Close()
}

// writeText writes Content-Type and Content-Transfer-Encoding, a blank
// line, and the body with CRLF line ends: 7bit when it is ASCII with
// short lines, quoted-printable otherwise (RFC 2045 §6.7), so the message
// crosses any 7-bit hop unchanged.
func writeText(b *bytes.Buffer, typ, body string) error {
	body = strings.ReplaceAll(strings.ReplaceAll(body, "\r\n", "\n"), "\r", "\n")
	if body != "" && !strings.HasSuffix(body, "\n") {
		body += "\n"
	}
	fmt.Fprintf(b, "Content-Type: %s; charset=utf-8\r\n", typ)
	if is7bit(body) {
		b.WriteString("Content-Transfer-Encoding: 7bit\r\n\r\n")
		b.WriteString(strings.ReplaceAll(body, "\n", "\r\n"))
		return nil
	}
	b.WriteString("Content-Transfer-Encoding: quoted-printable\r\n\r\n")
	qw := quotedprintable.NewWriter(b)
	if _, err := qw.Write([]byte(body)); err != nil {
		return fmt.Errorf("compose: %w", err)
	}
	return qw.Close()
}

func is7bit(s string) bool {
	for _, line := range strings.Split(s, "\n") {
		if len(line) > 76 {
			return false
		}
		for i := 0; i < len(line); i++ {
			if line[i] >= 0x80 || line[i] == 0 {
				return false
			}
		}
	}
	return true
}

func writeAttachment(mw *multipart.Writer, a Attachment) error {
	name := filepath.Base(a.Filename)
	typ := a.ContentType
	if typ == "" {
		typ = DetectType(name, a.Data)
	}
	mt, params, err := mime.ParseMediaType(typ)
	if err != nil {
		return fieldErr("attachment "+name, ErrInvalid, "content type %q: %v", typ, err)
	}
	params["name"] = name
	h := textproto.MIMEHeader{}
	h.Set("Content-Type", mime.FormatMediaType(mt, params))
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	h.Set("Content-Transfer-Encoding", "base64")
	pw, err := mw.CreatePart(h)
	if err != nil {
		return fmt.Errorf("compose: %w", err)
	}
	enc := base64.StdEncoding.EncodeToString(a.Data)
	for len(enc) > 76 { // RFC 2045 §6.8: lines of at most 76 characters
		if _, err := io.WriteString(pw, enc[:76]+"\r\n"); err != nil {
			return err
		}
		enc = enc[76:]
	}
	_, err = io.WriteString(pw, enc+"\r\n")
	return err
}

// DetectType returns the MIME type of an attachment: by the file name's
// extension when known, else by sniffing the first 512 bytes (the
// WHATWG algorithm of net/http), else application/octet-stream.
func DetectType(name string, data []byte) string {
	if t := mime.TypeByExtension(strings.ToLower(filepath.Ext(name))); t != "" {
		return t
	}
	return http.DetectContentType(data)
}
