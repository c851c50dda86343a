// Package submit hands a message to a mail server the way a mail user
// agent does: RFC 6409 message submission over SMTP (RFC 5321), with
// STARTTLS whenever the server offers it (RFC 3207) or implicit TLS
// (RFC 8314 §3), SMTP AUTH PLAIN or LOGIN (RFC 4954, RFC 4616), and the
// server's reply recorded for every recipient.
//
// Errors are data: a *ConnError means the server could not be reached or
// the session broke (the caller should try later: exit 3, EX_TEMPFAIL);
// a *ReplyError carries the reply that refused the whole transaction.
// Per-recipient refusals are not errors; they are in Result.Recipients.
package submit

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Options say where and how to submit.
type Options struct {
	// Addr is host:port of the submission server.
	Addr string
	// ImplicitTLS speaks TLS from the first byte (port 465).
	ImplicitTLS bool
	// RequireTLS fails instead of sending in clear text when the server
	// does not offer STARTTLS.
	RequireTLS bool
	// NoStartTLS never upgrades (for servers with a broken STARTTLS).
	NoStartTLS         bool
	InsecureSkipVerify bool
	RootCAs            *x509.CertPool
	// Username and Password enable AUTH; the password is only sent over
	// TLS, or in clear text to a loopback address, unless
	// AllowPlaintextAuth.
	Username, Password string
	AllowPlaintextAuth bool
	// Hello is the EHLO name; "" → the host name.
	Hello string
	// Timeout bounds the connection and each command; 0 → 30 s. The
	// final reply after DATA may take up to 10 minutes (RFC 5321
	// §4.5.3.2.6).
	Timeout time.Duration
}

// Reply is an SMTP reply.
type Reply struct {
	Code     int    `json:"code"`
	Enhanced string `json:"enhanced,omitempty"` // RFC 3463 "x.y.z"
	Text     string `json:"text"`
}

func (r Reply) String() string {
	s := strconv.Itoa(r.Code)
	if r.Enhanced != "" {
		s += " " + r.Enhanced
	}
	if r.Text != "" {
		s += " " + r.Text
	}
	return s
}

// Temporary reports a 4xx reply (RFC 5321 §4.2.1).
func (r Reply) Temporary() bool { return r.Code >= 400 && r.Code < 500 }

// RecipientResult is what became of one recipient.
type RecipientResult struct {
	Address string `json:"address"`
	// Accepted means the server took responsibility for delivering the
	// message to this recipient (RCPT and DATA both accepted).
	Accepted bool  `json:"accepted"`
	Reply    Reply `json:"reply"`
}

// Result of a submission; returned (partly filled) with errors too.
type Result struct {
	Server     string            `json:"server"`
	TLS        bool              `json:"tls"`
	TLSVersion string            `json:"tls_version,omitempty"`
	Auth       string            `json:"auth,omitempty"` // mechanism used
	Recipients []RecipientResult `json:"recipients"`
	// Data is the reply to the end of the message; nil when DATA was not
	// reached.
	Data *Reply `json:"data,omitempty"`
	// QueueID is the server's queue id when its reply names one
	// ("queued as X", "id=X").
	QueueID string `json:"queue_id,omitempty"`
}

// Refused is the number of recipients the server did not accept.
func (r *Result) Refused() int {
	n := 0
	for _, rc := range r.Recipients {
		if !rc.Accepted {
			n++
		}
	}
	return n
}

// ConnError: the server could not be reached, TLS failed, or the
// connection broke. Trying again later may work.
type ConnError struct {
	Addr, Stage string
	Err         error
}

func (e *ConnError) Error() string {
	return fmt.Sprintf("submit: %s: %s: %v", e.Addr, e.Stage, e.Err)
}
func (e *ConnError) Unwrap() error { return e.Err }

// ReplyError: the server refused a command that concerns the whole
// transaction (greeting, EHLO, AUTH, MAIL, DATA).
type ReplyError struct {
	Command string
	Reply   Reply
}

func (e *ReplyError) Error() string {
	return fmt.Sprintf("submit: %s refused: %s", e.Command, e.Reply)
}

// Temporary reports a 4xx refusal.
func (e *ReplyError) Temporary() bool { return e.Reply.Temporary() }

// ErrPolicy is wrapped when relayctl refuses to go on on its own (a
// password over clear text, TLS required but not offered).
var ErrPolicy = errors.New("submit: refused by policy")

type client struct {
	opts Options
	conn net.Conn
	text *textproto.Conn
	ext  map[string]string
	tls  bool
}

// Send submits msg (CRLF line ends) from → rcpts.
func Send(ctx context.Context, opts Options, from string, rcpts []string, msg []byte) (*Result, error) {
	res := &Result{Server: opts.Addr}
	for _, r := range rcpts {
		res.Recipients = append(res.Recipients, RecipientResult{Address: r})
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.Hello == "" {
		opts.Hello, _ = os.Hostname()
		if opts.Hello == "" {
			opts.Hello = "localhost"
		}
	}
	host, _, err := net.SplitHostPort(opts.Addr)
	if err != nil {
		return res, fmt.Errorf("submit: server %q: %w", opts.Addr, err)
	}
	d := net.Dialer{Timeout: opts.Timeout}
	conn, err := d.DialContext(ctx, "tcp", opts.Addr)
	if err != nil {
		return res, &ConnError{opts.Addr, "connect", err}
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()

	tlsConf := &tls.Config{ServerName: host, RootCAs: opts.RootCAs, InsecureSkipVerify: opts.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
	c := &client{opts: opts, conn: conn}
	if opts.ImplicitTLS {
		tc := tls.Client(conn, tlsConf)
		tc.SetDeadline(time.Now().Add(opts.Timeout))
		if err := tc.HandshakeContext(ctx); err != nil {
			return res, &ConnError{opts.Addr, "TLS handshake", err}
		}
		c.conn, c.tls = tc, true
	}
	c.text = textproto.NewConn(c.conn)

	if _, err := c.expect("greeting", 220, ""); err != nil {
		return res, err
	}
	if err := c.hello(); err != nil {
		return res, err
	}
	if !c.tls && !opts.NoStartTLS {
		if _, ok := c.ext["STARTTLS"]; ok {
			if _, err := c.expect("STARTTLS", 220, "STARTTLS"); err != nil {
				return res, err
			}
			tc := tls.Client(conn, tlsConf)
			tc.SetDeadline(time.Now().Add(opts.Timeout))
			if err := tc.HandshakeContext(ctx); err != nil {
				return res, &ConnError{opts.Addr, "STARTTLS handshake", err}
			}
			c.conn, c.tls = tc, true
			c.text = textproto.NewConn(tc)
			if err := c.hello(); err != nil { // RFC 3207 §4.2: forget what was learnt before TLS
				return res, err
			}
		}
	}
	if c.tls {
		res.TLS = true
		if tc, ok := c.conn.(*tls.Conn); ok {
			res.TLSVersion = tls.VersionName(tc.ConnectionState().Version)
		}
	} else if opts.RequireTLS {
		return res, fmt.Errorf("%w: %s does not offer STARTTLS and TLS is required", ErrPolicy, opts.Addr)
	}
	if opts.Username != "" {
		mech, err := c.auth(host)
		if err != nil {
			return res, err
		}
		res.Auth = mech
	}

	mail := "MAIL FROM:<" + from + ">"
	if size, ok := c.ext["SIZE"]; ok {
		if max, err := strconv.ParseInt(size, 10, 64); err == nil && max > 0 && int64(len(msg)) > max {
			return res, &ReplyError{"MAIL", Reply{Code: 552, Enhanced: "5.3.4", Text: fmt.Sprintf("message of %d bytes exceeds the server's limit of %d (SIZE)", len(msg), max)}}
		}
		mail += " SIZE=" + strconv.Itoa(len(msg))
	}
	if _, ok := c.ext["8BITMIME"]; ok && has8bit(msg) {
		mail += " BODY=8BITMIME" // RFC 6152
	}
	if _, ok := c.ext["SMTPUTF8"]; ok && (!isASCII(from) || !allASCII(rcpts)) {
		mail += " SMTPUTF8" // RFC 6531 §3.4
	}
	if _, err := c.expect("MAIL", 250, "%s", mail); err != nil {
		return res, err
	}
	accepted := 0
	for i, r := range rcpts {
		rep, err := c.cmd("RCPT TO:<%s>", r)
		if err != nil {
			return res, err
		}
		res.Recipients[i].Reply = rep.Reply
		if rep.Code/100 == 2 {
			res.Recipients[i].Accepted = true
			accepted++
		}
	}
	if accepted == 0 {
		c.quit()
		return res, nil
	}
	if _, err := c.expect("DATA", 354, "DATA"); err != nil {
		unaccept(res, err)
		return res, err
	}
	c.conn.SetDeadline(time.Now().Add(max(opts.Timeout, 10*time.Minute)))
	w := c.text.DotWriter()
	if _, err := w.Write(msg); err != nil {
		return res, c.broken("sending the message", err)
	}
	if err := w.Close(); err != nil {
		return res, c.broken("sending the message", err)
	}
	rep, err := c.read("end of data")
	if err != nil {
		unaccept(res, err)
		return res, err
	}
	res.Data = &rep
	if rep.Code/100 != 2 {
		for i := range res.Recipients {
			if res.Recipients[i].Accepted {
				res.Recipients[i].Accepted = false
				res.Recipients[i].Reply = rep
			}
		}
		c.quit()
		return res, nil
	}
	res.QueueID = queueID(rep.Text)
	c.quit()
	return res, nil
}

// unaccept marks recipients accepted at RCPT as not accepted after the
// session failed before the end of data.
func unaccept(res *Result, err error) {
	var re *ReplyError
	for i := range res.Recipients {
		if res.Recipients[i].Accepted {
			res.Recipients[i].Accepted = false
			if errors.As(err, &re) {
				res.Recipients[i].Reply = re.Reply
			}
		}
	}
}

var queueIDRe = regexp.MustCompile(`(?i)(?:queued as|id=|queue id:?)\s*([A-Za-z0-9._-]+)`)

func queueID(text string) string {
	if m := queueIDRe.FindStringSubmatch(text); m != nil {
		return m[1]
	}
	return ""
}

func (c *client) hello() error {
	rep, err := c.cmd("EHLO %s", c.opts.Hello)
	if err != nil {
		return err
	}
	if rep.Code/100 != 2 {
		// RFC 5321 §3.2: a server that does not know EHLO gets HELO.
		if rep, err = c.cmd("HELO %s", c.opts.Hello); err != nil {
			return err
		}
		if rep.Code/100 != 2 {
			c.quit()
			return &ReplyError{"HELO", rep.Reply}
		}
		c.ext = map[string]string{}
		return nil
	}
	c.ext = map[string]string{}
	lines := strings.Split(rep.raw, "\n")
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(strings.TrimSpace(l), " ")
		c.ext[strings.ToUpper(k)] = v
	}
	return nil
}

func (c *client) auth(host string) (string, error) {
	mechs, ok := c.ext["AUTH"]
	if !ok {
		return "", fmt.Errorf("%w: %s does not offer AUTH (is this the submission port?)", ErrPolicy, c.opts.Addr)
	}
	if !c.tls && !c.opts.AllowPlaintextAuth && !isLoopback(host) {
		return "", fmt.Errorf("%w: not sending the password to %s without TLS", ErrPolicy, c.opts.Addr)
	}
	offered := strings.Fields(strings.ToUpper(mechs))
	has := func(m string) bool { return slices.Contains(offered, m) }
	enc := base64.StdEncoding.EncodeToString
	switch {
	case has("PLAIN"):
		ir := enc([]byte("\x00" + c.opts.Username + "\x00" + c.opts.Password)) // RFC 4616 §2
		_, err := c.expect("AUTH", 235, "AUTH PLAIN %s", ir)
		return "PLAIN", err
	case has("LOGIN"):
		if _, err := c.expect("AUTH", 334, "AUTH LOGIN"); err != nil {
			return "", err
		}
		if _, err := c.expect("AUTH", 334, "%s", enc([]byte(c.opts.Username))); err != nil {
			return "", err
		}
		_, err := c.expect("AUTH", 235, "%s", enc([]byte(c.opts.Password)))
		return "LOGIN", err
	}
	return "", fmt.Errorf("%w: %s offers AUTH %s; relayctl speaks PLAIN and LOGIN", ErrPolicy, c.opts.Addr, mechs)
}

type reply struct {
	Reply
	raw string
}

// cmd sends a command and reads its reply, whatever the code.
func (c *client) cmd(format string, args ...any) (reply, error) {
	c.conn.SetDeadline(time.Now().Add(c.opts.Timeout))
	verb, _, _ := strings.Cut(format, " ")
	if err := c.text.PrintfLine(format, args...); err != nil {
		return reply{}, c.broken(verb, err)
	}
	return c.readRaw(verb)
}

// readRaw reads one (possibly multi-line) reply; the deadline was set
// by the caller.
func (c *client) readRaw(stage string) (reply, error) {
	code, msg, err := c.text.ReadResponse(0)
	if err != nil {
		return reply{}, c.broken(stage, err)
	}
	return reply{Reply: parseReply(code, msg), raw: msg}, nil
}

func (c *client) read(stage string) (Reply, error) {
	r, err := c.readRaw(stage)
	return r.Reply, err
}

// expect sends a command (format "" only reads) and wants code.
func (c *client) expect(stage string, code int, format string, args ...any) (Reply, error) {
	var r reply
	var err error
	if format == "" {
		c.conn.SetDeadline(time.Now().Add(c.opts.Timeout))
		r, err = c.readRaw(stage)
	} else {
		r, err = c.cmd(format, args...)
	}
	if err != nil {
		return Reply{}, err
	}
	if r.Code != code && !(code == 250 && r.Code/100 == 2) {
		if r.Code == 421 { // RFC 5321 §3.8: the server is closing
			c.conn.Close()
		} else {
			c.quit()
		}
		return r.Reply, &ReplyError{stage, r.Reply}
	}
	return r.Reply, nil
}

func (c *client) broken(stage string, err error) error {
	return &ConnError{c.opts.Addr, stage, err}
}

func (c *client) quit() {
	c.conn.SetDeadline(time.Now().Add(5 * time.Second))
	if c.text.PrintfLine("QUIT") == nil {
		c.text.ReadResponse(0)
	}
}

// parseReply splits "2.1.5 Ok" into the enhanced code and text; lines of
// a multi-line reply are joined with "; ".
func parseReply(code int, msg string) Reply {
	lines := strings.Split(msg, "\n")
	enh := ""
	for i, l := range lines {
		if e, rest, ok := strings.Cut(l, " "); ok && isEnhanced(e, code) {
			enh = e
			lines[i] = rest
		} else if isEnhanced(l, code) {
			enh, lines[i] = l, ""
		}
	}
	return Reply{Code: code, Enhanced: enh, Text: strings.Join(lines, "; ")}
}

// isEnhanced: RFC 3463 class.subject.detail whose class matches the
// reply code's first digit.
func isEnhanced(s string, code int) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || int(parts[0][0]-'0') != code/100 {
		return false
	}
	for _, p := range parts[1:] {
		if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 999 {
			return false
		}
	}
	return true
}

func has8bit(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return true
		}
	}
	return false
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func allASCII(ss []string) bool {
	for _, s := range ss {
		if !isASCII(s) {
			return false
		}
	}
	return true
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
