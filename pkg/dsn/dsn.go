// Package dsn builds delivery status notifications: the bounce, delay and
// success reports an MTA sends back to the envelope sender.
//
// The format is RFC 3464 (message/delivery-status) inside RFC 6522
// multipart/report; report-type=delivery-status, with the status codes of
// RFC 3463 and the RFC 3461 parameters (ENVID, ORCPT, RET) echoed back.
// Notifications are marked Auto-Submitted: auto-replied (RFC 3834 §5) and
// are sent from the null reverse-path so they are never bounced in turn
// (RFC 5321 §4.5.5, §6.1).
package dsn

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"
	"time"

	"github.com/relayctl/relayctl/pkg/compose"
)

// Action is the RFC 3464 §2.3.3 Action field.
type Action string

// Actions.
const (
	Failed    Action = "failed"
	Delayed   Action = "delayed"
	Delivered Action = "delivered"
	Relayed   Action = "relayed"
)

// Recipient is the per-recipient part of a report (RFC 3464 §2.3).
type Recipient struct {
	// Address is the recipient as given in RCPT TO (Final-Recipient).
	Address string
	// ORcpt is the RFC 3461 ORCPT value ("rfc822;addr"), "" if none.
	ORcpt  string
	Action Action
	// Status is the RFC 3463 code, e.g. "5.1.1"; "" derives one from
	// Action (5.0.0 failed, 4.0.0 delayed, 2.0.0 delivered/relayed).
	Status string
	// RemoteMTA is the host that gave the final reply, "" if none (DNS
	// errors, connection failures).
	RemoteMTA string
	// Diagnostic is the remote SMTP reply ("550 5.1.1 no such user");
	// written as "smtp; …" in Diagnostic-Code. "" when there was no reply.
	Diagnostic string
	// Reason is a human explanation for the text part when there is no
	// SMTP reply (e.g. "domain does not accept mail (null MX)").
	Reason         string
	LastAttempt    time.Time
	WillRetryUntil time.Time // delayed reports only
}

// Report is one notification to one envelope sender.
type Report struct {
	// ReportingMTA is our host name (Reporting-MTA: dns; …).
	ReportingMTA string
	// To is the envelope sender of the original message: the DSN's only
	// recipient.
	To string
	// QueueID is the original message's queue id (X-Postfix-style
	// reference for operators; goes into the text part).
	QueueID string
	// EnvID is the RFC 3461 ENVID of the original message.
	EnvID string
	// Arrival is when the original message was accepted.
	Arrival time.Time
	// Date of the report (zero → time.Now()).
	Date time.Time
	// ReturnFull returns the whole original message (RET=FULL) instead of
	// only its header (RET=HDRS, and our default). It is ignored for
	// delayed/success reports and for messages larger than MaxReturn.
	ReturnFull bool
	// MaxReturn caps the returned content (0 → 1 MiB); a larger original
	// is returned as headers only.
	MaxReturn  int64
	Recipients []Recipient
}

// ErrNoRecipients is returned by Build for a report without recipients.
var ErrNoRecipients = errors.New("dsn: no recipients")

// Build writes the complete notification message (CRLF line endings),
// reading the original message from orig (nil: no original part).
func Build(rep Report, orig io.Reader) ([]byte, error) {
	if len(rep.Recipients) == 0 {
		return nil, ErrNoRecipients
	}
	date := rep.Date
	if date.IsZero() {
		date = time.Now()
	}
	host := clean(rep.ReportingMTA)
	if host == "" {
		host = "localhost"
	}
	boundary := randHex(12) + "/" + host
	action := rep.Recipients[0].Action
	for _, r := range rep.Recipients {
		if r.Action == Failed {
			action = Failed
		}
	}

	var b bytes.Buffer
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\r\n", args...) }
	w("From: Mail Delivery System <MAILER-DAEMON@%s>", host)
	w("To: <%s>", clean(rep.To))
	w("Subject: %s", subject(action))
	w("Date: %s", date.Format(time.RFC1123Z))
	w("Message-ID: <%s.dsn@%s>", randHex(10), host)
	w("Auto-Submitted: auto-replied") // RFC 3834 §5
	w("MIME-Version: 1.0")
	w("Content-Type: multipart/report; report-type=delivery-status;") // RFC 6522 §3
	w("\tboundary=\"%s\"", boundary)
	w("")
	w("This is a MIME-encapsulated delivery status notification.")
	w("")

	// Part 1: human readable (RFC 6522 §3, first part).
	w("--%s", boundary)
	w("Content-Type: text/plain; charset=utf-8")
	w("Content-Transfer-Encoding: 8bit")
	w("")
	writeHuman(&b, rep, action, host)

	// Part 2: message/delivery-status (RFC 3464 §2).
	w("--%s", boundary)
	w("Content-Type: message/delivery-status")
	w("")
	w("Reporting-MTA: dns; %s", host)
	if rep.QueueID != "" {
		w("X-Queue-ID: %s", clean(rep.QueueID))
	}
	if rep.EnvID != "" {
		w("Original-Envelope-Id: %s", xtext(rep.EnvID)) // RFC 3464 §2.2.1
	}
	if !rep.Arrival.IsZero() {
		w("Arrival-Date: %s", rep.Arrival.Format(time.RFC1123Z))
	}
	for _, r := range rep.Recipients {
		w("")
		if r.ORcpt != "" {
			w("Original-Recipient: %s", orcpt(r.ORcpt)) // RFC 3464 §2.3.1
		}
		w("Final-Recipient: rfc822; %s", clean(r.Address))
		w("Action: %s", r.Action)
		w("Status: %s", status(r))
		if r.RemoteMTA != "" {
			w("Remote-MTA: dns; %s", clean(r.RemoteMTA))
		}
		if r.Diagnostic != "" {
			w("Diagnostic-Code: smtp; %s", clean(r.Diagnostic))
		}
		if !r.LastAttempt.IsZero() {
			w("Last-Attempt-Date: %s", r.LastAttempt.Format(time.RFC1123Z))
		}
		if r.Action == Delayed && !r.WillRetryUntil.IsZero() {
			w("Will-Retry-Until: %s", r.WillRetryUntil.Format(time.RFC1123Z))
		}
	}
	w("")

	// Part 3: the original message or its header (RFC 3462 §3, RFC 3461 §4.3).
	if orig != nil {
		limit := rep.MaxReturn
		if limit <= 0 {
			limit = 1 << 20
		}
		full, err := io.ReadAll(io.LimitReader(orig, limit+1))
		if err != nil {
			return nil, fmt.Errorf("dsn: read original message: %w", err)
		}
		returnFull := rep.ReturnFull && action == Failed && int64(len(full)) <= limit
		w("--%s", boundary)
		if returnFull {
			w("Content-Type: message/rfc822")
			w("")
			b.Write(compose.ToCRLF(full))
			if !bytes.HasSuffix(full, []byte("\n")) {
				w("")
			}
		} else {
			w("Content-Type: text/rfc822-headers")
			w("")
			b.Write(compose.ToCRLF(header(full)))
		}
	}
	w("--%s--", boundary)
	return b.Bytes(), nil
}

func subject(a Action) string {
	switch a {
	case Failed:
		return "Undelivered Mail Returned to Sender"
	case Delayed:
		return "Delayed Mail (still being retried)"
	default:
		return "Successful Mail Delivery Report"
	}
}

func writeHuman(b *bytes.Buffer, rep Report, action Action, host string) {
	bw := bufio.NewWriter(b)
	defer bw.Flush()
	p := func(format string, args ...any) { fmt.Fprintf(bw, format+"\r\n", args...) }
	p("This is the mail system at host %s.", host)
	p("")
	switch action {
	case Failed:
		p("I'm sorry to have to inform you that your message could not")
		p("be delivered to one or more recipients. The details are below.")
	case Delayed:
		p("Your message could not be delivered yet to one or more recipients.")
		p("It will be retried; you do not need to send it again.")
	default:
		p("Your message was successfully delivered to the destination(s)")
		p("listed below.")
	}
	if rep.QueueID != "" {
		p("")
		p("Queue ID: %s", clean(rep.QueueID))
	}
	p("")
	for _, r := range rep.Recipients {
		why := r.Diagnostic
		if why == "" {
			why = r.Reason
		}
		line := fmt.Sprintf("<%s>: %s", clean(r.Address), r.Action)
		if r.RemoteMTA != "" {
			line += " (host " + clean(r.RemoteMTA) + ")"
		}
		p("%s", line)
		if why != "" {
			p("    %s", clean(why))
		}
		if r.Action == Delayed && !r.WillRetryUntil.IsZero() {
			p("    will retry until %s", r.WillRetryUntil.Format(time.RFC1123Z))
		}
	}
	p("")
}

// status returns the RFC 3463 code of a recipient.
func status(r Recipient) string {
	if validStatus(r.Status) {
		return r.Status
	}
	switch r.Action {
	case Failed:
		return "5.0.0"
	case Delayed:
		return "4.0.0"
	default:
		return "2.0.0"
	}
}

func validStatus(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || !strings.Contains("245", parts[0]) {
		return false
	}
	for _, p := range parts[1:] {
		if p == "" || len(p) > 3 {
			return false
		}
		for _, c := range p {
			if c < '0' || c > '9' {
				return false
			}
		}
	}
	return true
}

// orcpt renders an ORCPT value "type;addr" as "type; addr".
func orcpt(s string) string {
	typ, addr, ok := strings.Cut(s, ";")
	if !ok {
		return "rfc822; " + clean(s)
	}
	return clean(typ) + "; " + clean(addr)
}

// header returns the header block of msg (up to and including the blank
// line, or all of msg when it has no body).
func header(msg []byte) []byte {
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		return msg[:i+4]
	}
	if i := bytes.Index(msg, []byte("\n\n")); i >= 0 {
		return msg[:i+2]
	}
	if len(msg) > 0 && !bytes.HasSuffix(msg, []byte("\n")) {
		return append(append([]byte(nil), msg...), '\r', '\n')
	}
	return msg
}

// clean makes s safe for one header line: no CR/LF or other controls.
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > 900 {
		s = s[:900]
	}
	return strings.TrimSpace(s)
}

// xtext decodes nothing and encodes what must be: ENVID is carried as
// RFC 3461 xtext in SMTP; we store it decoded and write it plainly when
// printable ASCII, else as an encoded word.
func xtext(s string) string {
	s = clean(s)
	for _, c := range s {
		if c > 0x7e {
			return mime.QEncoding.Encode("utf-8", s)
		}
	}
	return s
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
