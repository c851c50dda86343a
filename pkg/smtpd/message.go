package smtpd

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"
)

// Errors from checking message content; each maps to a 5xx reply.
var (
	ErrBareLF   = errors.New("smtpd: bare LF in message data")
	ErrBareCR   = errors.New("smtpd: bare CR in message data")
	ErrNoFrom   = errors.New("smtpd: message has no From header field")
	ErrManyFrom = errors.New("smtpd: message has more than one From header field")
	ErrBadFrom  = errors.New("smtpd: From header field is not a valid address list")
)

// checkLineEndings rejects any CR not followed by LF and any LF not
// preceded by CR (RFC 5321 §2.3.8: "CR and LF MUST only occur together
// as CRLF"). Relaying such data onward is what SMTP smuggling exploits:
// a receiver that ends DATA at "<LF>.<LF>" would read the rest as new
// commands. It returns the offset of the first offending byte.
func checkLineEndings(b []byte) (int, error) {
	for i := 0; i < len(b); {
		j := bytes.IndexAny(b[i:], "\r\n")
		if j < 0 {
			return -1, nil
		}
		i += j
		if b[i] == '\n' {
			return i, ErrBareLF
		}
		if i+1 >= len(b) || b[i+1] != '\n' {
			return i, ErrBareCR
		}
		i += 2
	}
	return -1, nil
}

// headerField is one field of the message header, as it appears.
type headerField struct {
	Name  string // as written
	Value string // unfolded, trimmed
}

// parseHeader reads the header section (RFC 5322 §2.2) of a CRLF
// message: fields up to the first empty line. It returns the fields and
// the offset where the header section ends (the empty line, or len(b)).
// A line that is neither a field nor a continuation ends the header.
func parseHeader(b []byte) (fields []headerField, end int) {
	i := 0
	for i < len(b) {
		eol := bytes.Index(b[i:], []byte("\r\n"))
		var line []byte
		next := len(b)
		if eol >= 0 {
			line = b[i : i+eol]
			next = i + eol + 2
		} else {
			line = b[i:]
		}
		if len(line) == 0 {
			return fields, i
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(fields) == 0 {
				return fields, i
			}
			f := &fields[len(fields)-1]
			f.Value = strings.TrimSpace(f.Value + " " + strings.TrimSpace(string(line)))
			i = next
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !isFieldName(line[:colon]) {
			return fields, i
		}
		fields = append(fields, headerField{
			Name:  string(line[:colon]),
			Value: strings.TrimSpace(string(line[colon+1:])),
		})
		i = next
	}
	return fields, len(b)
}

// isFieldName: printable US-ASCII except colon (RFC 5322 §3.6.8).
func isFieldName(b []byte) bool {
	for _, c := range b {
		if c < 33 || c > 126 {
			return false
		}
	}
	return true
}

func lookup(fields []headerField, name string) []string {
	var out []string
	for _, f := range fields {
		if strings.EqualFold(f.Name, name) {
			out = append(out, f.Value)
		}
	}
	return out
}

// fromAddresses parses the single From field (RFC 5322 §3.6.2).
func fromAddresses(fields []headerField) ([]string, error) {
	vals := lookup(fields, "From")
	switch {
	case len(vals) == 0:
		return nil, ErrNoFrom
	case len(vals) > 1:
		return nil, ErrManyFrom
	}
	list, err := mail.ParseAddressList(vals[0])
	if err != nil || len(list) == 0 {
		return nil, ErrBadFrom
	}
	out := make([]string, len(list))
	for i, a := range list {
		out[i] = a.Address
	}
	return out, nil
}

func domainOf(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return ""
	}
	return strings.ToLower(strings.TrimSuffix(addr[at+1:], "."))
}

// newMessageID returns a unique msg-id (RFC 5322 §3.6.4) on host.
func newMessageID(host string, now time.Time) string {
	var r [12]byte
	_, _ = rand.Read(r[:])
	return fmt.Sprintf("<%d.%s@%s>", now.UnixNano(), hex.EncodeToString(r[:]), host)
}

// receivedField builds the Received trace field (RFC 5321 §4.4) with the
// "with" protocol of RFC 3848 (ESMTP, ESMTPS, ESMTPA, ESMTPSA).
func receivedField(helo, ip, host, tlsInfo, user string, rcpts []string, now time.Time) string {
	proto := "ESMTP"
	if tlsInfo != "" {
		proto += "S"
	}
	if user != "" {
		proto += "A"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Received: from %s ([%s])\r\n\tby %s (relayctl) with %s", cleanHELO(helo), ip, host, proto)
	if tlsInfo != "" {
		fmt.Fprintf(&b, "\r\n\t(%s)", tlsInfo)
	}
	if len(rcpts) == 1 {
		fmt.Fprintf(&b, "\r\n\tfor <%s>", rcpts[0])
	}
	fmt.Fprintf(&b, ";\r\n\t%s\r\n", now.Format(time.RFC1123Z))
	return b.String()
}

// cleanHELO keeps the client's HELO argument from breaking the field.
func cleanHELO(s string) string {
	if s == "" {
		return "unknown"
	}
	b := []byte(s)
	for i, c := range b {
		if c <= ' ' || c > '~' || c == '(' || c == ')' || c == ';' {
			b[i] = '_'
		}
	}
	if len(b) > 255 {
		b = b[:255]
	}
	return string(b)
}
