package delivery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/relayctl/relayctl/pkg/events"
	"github.com/relayctl/relayctl/pkg/queue"
)

// deliverer does the SMTP side for one recipient domain; shared by the
// Engine and DeliverNow.
type deliverer struct {
	cfg  Config
	pool *pool // nil: no reuse
}

// job is one message to the recipients of one domain.
type job struct {
	from     string
	size     int64
	ret      queue.DSNRet
	envID    string
	smtputf8 bool
	rcpts    []queue.Recipient
	open     func() (io.ReadCloser, error)
	// perConn caps the messages one connection carries (0: no limit;
	// Config.Throttle).
	perConn int
	// source and hello: the stream's sending identity (Config.Identity).
	source, hello string
}

// outcome is a Result plus what the engine needs for DSNs.
type outcome struct {
	Result
	remoteDSN bool // the receiver took NOTIFY/ORCPT: it reports success itself
}

func resultOf(addr string, f *failure) outcome {
	o := events.Deferred
	if f.Permanent {
		o = events.Bounced
	}
	return outcome{Result: Result{Recipient: addr, Outcome: o, Code: f.Code, Enhanced: f.Enhanced,
		Response: f.response(), Host: f.Host, IP: f.IP, TLS: f.TLS}}
}

// deliverDomain delivers j to one domain's hosts: MX (or route) order,
// IPv6 then IPv4 per host, next host on connection failure or a 4xx before
// any recipient was accepted (RFC 5321 §5.1), one result per recipient.
func (d *deliverer) deliverDomain(ctx context.Context, domain string, j job) []outcome {
	all := func(f *failure) []outcome {
		out := make([]outcome, len(j.rcpts))
		for i, r := range j.rcpts {
			out[i] = resultOf(r.Address, f)
		}
		return out
	}
	if domain == "" {
		return all(permFail("5.1.3", "bad recipient address syntax"))
	}
	targets, f := d.route(ctx, domain)
	if f != nil {
		return all(f)
	}
	for i := range targets {
		targets[i].source, targets[i].hello = j.source, j.hello
	}
	var last *failure
	for _, t := range targets {
		for i, addr := range t.Addrs {
			if ctx.Err() != nil {
				return all(tempFail("4.4.1", "delivery interrupted: %v", ctx.Err()))
			}
			res, f := d.try(ctx, t, addr, j)
			if f == nil {
				return res
			}
			last = f
			if f.Permanent {
				// The whole message refused over IPv6 (a PTR complaint,
				// typically): try the host's IPv4 addresses first.
				if i < t.v4 && t.v4 < len(t.Addrs) {
					continue
				}
				return all(f)
			}
		}
	}
	if last == nil {
		last = tempFail("4.4.1", "no host to deliver to")
	}
	last.Permanent = false // nobody took it, nobody refused it for good: retry later
	return all(last)
}

// try runs one transaction on a session to addr. It returns per-recipient
// outcomes, or a failure that concerns the whole message (connection,
// greeting, EHLO, TLS, MAIL, DATA before any reply) so the caller can try
// another address.
func (d *deliverer) try(ctx context.Context, t target, addr string, j job) ([]outcome, *failure) {
	ip, _, _ := net.SplitHostPort(addr)
	s := d.pool.get(poolKey(addr, t))
	if s == nil {
		var err error
		s, err = d.dial(ctx, t, addr, false)
		if err != nil && errors.Is(err, errTLS) && !d.requireTLS(t) && (t.route == nil || t.route.Username == "") {
			// Opportunistic TLS failed: deliver in plain text rather than
			// not at all (RFC 7435 §3).
			s, err = d.dial(ctx, t, addr, true)
		}
		if err != nil {
			f := failureOf(err, nil, t.Host, ip)
			f.Permanent = false // a refusal at connect/greeting: try elsewhere
			return nil, f
		}
	}
	res, f, reusable := d.transact(ctx, s, j)
	if f != nil && s.reused && f.Code == 0 && !f.Permanent {
		// A cached connection the server had closed: once more on a fresh one.
		s.close()
		var err error
		if s, err = d.dial(ctx, t, addr, false); err != nil {
			f := failureOf(err, nil, t.Host, ip)
			f.Permanent = false
			return nil, f
		}
		res, f, reusable = d.transact(ctx, s, j)
	}
	s.sent++
	d.release(s, reusable && (j.perConn <= 0 || s.sent < j.perConn))
	return res, f
}

func (d *deliverer) release(s *session, reusable bool) {
	if reusable && d.pool != nil {
		d.pool.put(s)
		return
	}
	if reusable {
		s.conn.SetDeadline(time.Now().Add(5 * time.Second))
		s.c.Quit()
	}
	s.close()
}

func (d *deliverer) transact(ctx context.Context, s *session, j job) (res []outcome, f *failure, reusable bool) {
	stop := context.AfterFunc(ctx, func() { s.conn.Close() })
	defer stop()
	host, ip := s.host, s.ip()
	fail := func(err error) *failure { return failureOf(err, s, host, ip) }
	result := func(addr string, code int, enh, text string, o events.Result) outcome {
		return outcome{Result: Result{Recipient: addr, Outcome: o, Code: code, Enhanced: enh,
			Response: strings.TrimSpace(fmt.Sprintf("%d %s %s", code, enh, text)), Host: host, IP: ip, TLS: s.tls}}
	}
	// refused is the outcome of a recipient the server answered ff for.
	refused := func(addr string, ff *failure) outcome {
		o := events.Deferred
		if ff.Permanent {
			o = events.Bounced
		}
		return result(addr, ff.Code, ff.Enhanced, ff.Text, o)
	}
	if j.smtputf8 && !s.has("SMTPUTF8") {
		// RFC 6531 §3.2: cannot be downgraded; bounce.
		return nil, &failure{Permanent: true, Enhanced: "5.6.7", Text: host + " does not support SMTPUTF8", Host: host, IP: ip, TLS: s.tls}, true
	}
	if v, ok := s.ext["SIZE"]; ok {
		// RFC 1870 §6: do not send what the server says it will refuse.
		if max, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil && max > 0 && j.size > max {
			return nil, &failure{Permanent: true, Code: 552, Enhanced: "5.3.4",
				Text: fmt.Sprintf("message size %d exceeds the fixed limit %d of %s", j.size, max, host), Host: host, IP: ip, TLS: s.tls}, true
		}
	}
	mo := &smtp.MailOptions{Size: j.size, UTF8: j.smtputf8, EnvelopeID: j.envID}
	switch j.ret {
	case queue.RetFull:
		mo.Return = smtp.DSNReturnFull
	case queue.RetHdrs:
		mo.Return = smtp.DSNReturnHeaders
	}
	if !isPrintable(j.envID) {
		mo.EnvelopeID = ""
	}
	if err := s.c.Mail(j.from, mo); err != nil {
		f := fail(err)
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			return nil, f, s.c.Reset() == nil // a 4xx to MAIL: the caller tries the next host
		}
		return nil, f, false
	}
	res = make([]outcome, len(j.rcpts))
	var accepted []int
	for i, r := range j.rcpts {
		err := s.c.Rcpt(r.Address, rcptOptions(r))
		if err == nil {
			accepted = append(accepted, i)
			continue
		}
		var se *smtp.SMTPError
		if !errors.As(err, &se) {
			return nil, fail(err), false // connection lost: try elsewhere
		}
		res[i] = refused(r.Address, fail(err))
	}
	if len(accepted) == 0 {
		return res, nil, s.c.Reset() == nil
	}
	w, err := s.c.Data()
	if err != nil {
		var se *smtp.SMTPError
		if !errors.As(err, &se) {
			return nil, fail(err), false
		}
		ff := fail(err)
		if ff.Permanent && strings.Contains(ip, ":") {
			return nil, ff, s.c.Reset() == nil // refused over IPv6: let the caller try IPv4
		}
		for _, i := range accepted {
			res[i] = refused(j.rcpts[i].Address, ff)
		}
		return res, nil, s.c.Reset() == nil
	}
	rc, err := j.open()
	if err != nil {
		w.Close()
		return nil, &failure{Enhanced: "4.3.0", Text: "read queued message: " + err.Error()}, false
	}
	_, err = io.Copy(w, rc)
	rc.Close()
	var resp *smtp.DataResponse
	if err == nil {
		resp, err = w.CloseWithResponse()
	}
	if err != nil {
		var se *smtp.SMTPError
		if !errors.As(err, &se) {
			// Lost after DATA: we cannot know whether it was taken.
			// Deferring (not trying another host now) limits duplicates.
			ff := fail(err)
			for _, i := range accepted {
				res[i] = outcome{Result: Result{Recipient: j.rcpts[i].Address, Outcome: events.Deferred,
					Enhanced: "4.4.2", Response: "connection lost during DATA: " + ff.Text, Host: host, IP: ip, TLS: s.tls}}
			}
			return res, nil, false
		}
		ff := fail(err)
		if ff.Permanent && strings.Contains(ip, ":") {
			return nil, ff, true
		}
		for _, i := range accepted {
			res[i] = refused(j.rcpts[i].Address, ff)
		}
		return res, nil, true
	}
	code, enh, text := 250, "", resp.StatusText
	if c, rest, ok := strings.Cut(text, " "); ok {
		if _, ok := parseEnhanced(c); ok {
			enh, text = c, rest
		}
	}
	for _, i := range accepted {
		res[i] = result(j.rcpts[i].Address, code, enh, oneLine(text), events.Delivered)
		res[i].remoteDSN = s.has("DSN")
	}
	return res, nil, true
}

func rcptOptions(r queue.Recipient) *smtp.RcptOptions {
	o := &smtp.RcptOptions{}
	for _, n := range r.Notify {
		switch n := smtp.DSNNotify(strings.ToUpper(n)); n {
		case smtp.DSNNotifyNever:
			o.Notify = []smtp.DSNNotify{n} // NEVER stands alone (RFC 3461 §4.1)
			return withORcpt(o, r)
		case smtp.DSNNotifySuccess, smtp.DSNNotifyFailure, smtp.DSNNotifyDelayed:
			o.Notify = append(o.Notify, n)
		}
	}
	return withORcpt(o, r)
}

func withORcpt(o *smtp.RcptOptions, r queue.Recipient) *smtp.RcptOptions {
	if typ, addr, ok := strings.Cut(r.ORcpt, ";"); ok && addr != "" {
		switch strings.ToUpper(typ) {
		case "RFC822":
			if isPrintable(addr) {
				o.OriginalRecipientType, o.OriginalRecipient = smtp.DSNAddressTypeRFC822, addr
			}
		case "UTF-8":
			o.OriginalRecipientType, o.OriginalRecipient = smtp.DSNAddressTypeUTF8, addr
		}
	}
	return o
}

func isPrintable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
