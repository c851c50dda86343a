package compose

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/mail"
	"net/textproto"
	"slices"
	"strings"
	"time"
)

// Existing is a ready message (an .eml file, or what sendmail reads on
// stdin) split into its header section and body.
type Existing struct {
	Header mail.Header
	// raw is the message with CRLF line ends.
	raw []byte
	// headerEnd is the offset of the body in raw.
	headerEnd int
}

// ReadMessage reads a message, normalising bare LF line ends to CRLF (RFC
// 5322 §2.3) so it can go to SMTP DATA unchanged.
func ReadMessage(r io.Reader) (*Existing, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("compose: read message: %w", err)
	}
	return ParseMessage(data)
}

// ParseMessage parses data as a message (see ReadMessage).
func ParseMessage(data []byte) (*Existing, error) {
	raw := ToCRLF(data)
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(raw)))
	h, err := tp.ReadMIMEHeader()
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("%w: message header: %v", ErrInvalid, err)
	}
	if len(h) == 0 {
		return nil, fmt.Errorf("%w: the message has no header fields", ErrInvalid)
	}
	end := bytes.Index(raw, []byte("\r\n\r\n"))
	if end < 0 {
		end = len(raw)
	} else {
		end += 4
	}
	return &Existing{Header: mail.Header(h), raw: raw, headerEnd: end}, nil
}

// ToCRLF turns bare LF (and bare CR) line ends into CRLF.
func ToCRLF(data []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(data) + len(data)/40)
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case c == '\r' && i+1 < len(data) && data[i+1] == '\n':
			b.WriteString("\r\n")
			i++
		case c == '\r' || c == '\n':
			b.WriteString("\r\n")
		default:
			b.WriteByte(c)
		}
	}
	return b.Bytes()
}

// Bytes returns the message as it is now.
func (e *Existing) Bytes() []byte { return e.raw }

// Recipients returns the addresses in To, Cc and Bcc (sendmail -t),
// without duplicates.
func (e *Existing) Recipients() ([]string, error) {
	var out []string
	for _, f := range []string{"To", "Cc", "Bcc"} {
		for _, v := range e.Header[textproto.CanonicalMIMEHeaderKey(f)] {
			if strings.TrimSpace(v) == "" {
				continue
			}
			list, err := mail.ParseAddressList(v)
			if err != nil {
				return nil, &FieldError{Field: strings.ToLower(f), Err: fmt.Errorf("%w: %q: %v", ErrInvalid, v, err)}
			}
			for _, a := range list {
				if !slices.ContainsFunc(out, func(r string) bool { return strings.EqualFold(r, a.Address) }) {
					out = append(out, a.Address)
				}
			}
		}
	}
	return out, nil
}

// From returns the address of the From field ("" when absent).
func (e *Existing) From() (string, error) {
	v := e.Header.Get("From")
	if v == "" {
		return "", nil
	}
	list, err := mail.ParseAddressList(v)
	if err != nil || len(list) == 0 {
		return "", &FieldError{Field: "from", Err: fmt.Errorf("%w: %q", ErrInvalid, v)}
	}
	return list[0].Address, nil
}

// StripBcc removes every Bcc field from the header section, as sendmail
// -t does: blind recipients must not see each other (RFC 5322 §3.6.3).
func (e *Existing) StripBcc() {
	e.removeFields(func(name string) bool { return strings.EqualFold(name, "Bcc") })
}

func (e *Existing) removeFields(drop func(name string) bool) {
	hdr := e.raw[:e.headerEnd]
	var out bytes.Buffer
	skipping := false
	for len(hdr) > 0 {
		i := bytes.Index(hdr, []byte("\r\n"))
		var line []byte
		if i < 0 {
			line, hdr = hdr, nil
		} else {
			line, hdr = hdr[:i+2], hdr[i+2:]
		}
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			if !skipping {
				out.Write(line)
			}
			continue
		}
		name, _, _ := bytes.Cut(line, []byte(":"))
		skipping = drop(strings.TrimSpace(string(name)))
		if !skipping {
			out.Write(line)
		}
	}
	body := e.raw[e.headerEnd:]
	raw := append(out.Bytes(), body...)
	e.headerEnd = out.Len()
	e.raw = raw
}

// AddMissing prepends the fields an originator must supply (RFC 5322
// §3.6: Date and From; Message-ID, which it should) when the message
// lacks them, as a submission agent may (RFC 6409 §8).
func (e *Existing) AddMissing(now time.Time, from, host string) error {
	var add []Header
	if e.Header.Get("Date") == "" {
		add = append(add, Header{"Date", now.Format(time.RFC1123Z)})
	}
	if e.Header.Get("From") == "" && from != "" {
		add = append(add, Header{"From", from})
	}
	if e.Header.Get("Message-ID") == "" {
		id, err := NewMessageID(host)
		if err != nil {
			return err
		}
		add = append(add, Header{"Message-ID", "<" + id + ">"})
	}
	if len(add) == 0 {
		return nil
	}
	var b bytes.Buffer
	for _, h := range add {
		if err := noCRLF(h.Name, h.Value); err != nil {
			return err
		}
		writeField(&b, h.Name, h.Value)
		e.Header[textproto.CanonicalMIMEHeaderKey(h.Name)] = []string{h.Value}
	}
	e.headerEnd += b.Len()
	e.raw = append(b.Bytes(), e.raw...)
	return nil
}
