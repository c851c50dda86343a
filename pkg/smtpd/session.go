package smtpd

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"net/textproto"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/relayctl/relayctl/pkg/dkim"
	"github.com/relayctl/relayctl/pkg/events"
	"github.com/relayctl/relayctl/pkg/queue"
)

// Replies. Codes follow RFC 5321 §4.2 and the enhanced codes RFC 3463.
var (
	errAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	// RFC 4954 §6: 538 when the mechanism needs an encrypted channel.
	errEncryptionRequired = &smtp.SMTPError{Code: 538, EnhancedCode: smtp.EnhancedCode{5, 7, 11}, Message: "Encryption required for requested authentication mechanism"}
	errAuthFailed         = &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication credentials invalid"}
	errAuthBlocked        = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many failed authentication attempts, try again later"}
	errShuttingDown       = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Service shutting down, try again later"}
	errSenderNotAllowed   = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Sender address not allowed for this user"}
	errBadRecipient       = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Recipient address must be user@domain"}
	errTooManyRecipients  = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 5, 3}, Message: "Too many recipients"}
	errStorage            = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "Insufficient system storage, try again later"}
	errQueue              = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Could not queue the message, try again later"}
	errSigning            = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Could not sign the message, try again later"}
	errBusy               = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Server busy, try again later"}
	errReadData           = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Error reading message data"}
)

type session struct {
	s    *Server
	rt   *runtime
	conn *smtp.Conn
	tc   *trackedConn
	ip   net.IP
	ipS  string

	trusted bool
	user    *User

	from     string
	mailOpts smtp.MailOptions
	rcpts    []queue.Recipient
	// dropped are recipients accepted at RCPT but not to be delivered
	// (Config.RcptDrop), with the reason.
	dropped []droppedRcpt
}

type droppedRcpt struct{ addr, reason string }

var (
	_ smtp.Session     = (*session)(nil)
	_ smtp.AuthSession = (*session)(nil)
)

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	if s.closingNow() {
		return nil, errShuttingDown
	}
	rt := s.rt.Load()
	ipS := remoteIP(c.Conn().RemoteAddr())
	ip := net.ParseIP(ipS)
	sess := &session{s: s, rt: rt, conn: c, tc: s.tracked(c.Conn()), ip: ip, ipS: ipS}
	for _, n := range rt.cfg.TrustedNetworks {
		if ip != nil && n.Contains(ip) {
			sess.trusted = true
			break
		}
	}
	if sess.tc != nil {
		if _, ok := c.TLSConnectionState(); ok {
			sess.tc.tls.Store(true)
		}
	}
	return sess, nil
}

func (ss *session) isTLS() bool {
	_, ok := ss.conn.TLSConnectionState()
	return ok
}

// authAllowed: only on TLS or to a loopback client, unless InsecureAuth.
func (ss *session) authAllowed() bool {
	return ss.isTLS() || (ss.ip != nil && ss.s.isLoopback(ss.ip)) || ss.rt.cfg.InsecureAuth
}

// AuthMechanisms is what EHLO advertises: nothing where AUTH is not
// allowed (RFC 4954 §4), and nothing when there are no users.
func (ss *session) AuthMechanisms() []string {
	if len(ss.rt.users) == 0 || !ss.authAllowed() {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if len(ss.rt.users) == 0 {
		return nil, smtp.ErrAuthUnsupported
	}
	if !ss.authAllowed() {
		return nil, errEncryptionRequired
	}
	cfg := ss.rt.cfg
	if ss.s.auth.blocked(ss.ipS, cfg.MaxAuthFailures, cfg.AuthFailureWindow, cfg.Now()) {
		return nil, errAuthBlocked
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return ss.authFailed(username, "authorization identity differs")
			}
			return ss.checkPassword(username, password)
		}), nil
	case sasl.Login:
		return &loginServer{auth: ss.checkPassword}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (ss *session) checkPassword(username, password string) error {
	if u := ss.rt.verify(username, password); u != nil {
		ss.user = u
		ss.s.log.Info("authenticated", "client", ss.ipS, "user", u.Name)
		return nil
	}
	return ss.authFailed(username, "bad credentials")
}

// authFailed counts the failure and answers after a delay that grows
// with the failures from this IP (slowing down guessing); once the limit
// is reached the IP is refused for the window.
func (ss *session) authFailed(username, why string) error {
	cfg := ss.rt.cfg
	n := ss.s.auth.fail(ss.ipS, cfg.AuthFailureWindow, cfg.Now())
	ss.s.log.Warn("authentication failed", "client", ss.ipS, "user", username, "reason", why, "failures", n)
	delay := cfg.AuthFailureDelay * time.Duration(min(n, cfg.MaxAuthFailures))
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ss.s.done:
	}
	if n >= cfg.MaxAuthFailures {
		// Drop the connection after the reply: the client is blocked.
		go func() {
			time.Sleep(100 * time.Millisecond)
			_ = ss.conn.Close()
		}()
		return errAuthBlocked
	}
	return errAuthFailed
}

func (ss *session) mayRelay() bool { return ss.user != nil || ss.trusted }

func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	if ss.s.closingNow() {
		return errShuttingDown
	}
	if !ss.mayRelay() {
		ss.s.log.Info("relay refused: not authenticated", "client", ss.ipS, "from", from)
		return errAuthRequired
	}
	if ss.user != nil && !allowedSender(ss.user.AllowedSenders, from) {
		ss.s.log.Warn("sender not allowed", "client", ss.ipS, "user", ss.user.Name, "from", from)
		return errSenderNotAllowed
	}
	if opts != nil {
		if opts.Size > ss.rt.cfg.MaxMessageBytes {
			return smtp.ErrDataTooLarge
		}
		ss.mailOpts = *opts
	}
	ss.from = from
	ss.rcpts = ss.rcpts[:0]
	ss.dropped = ss.dropped[:0]
	if ss.tc != nil {
		ss.tc.busy.Store(true)
	}
	return nil
}

func (ss *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	if !ss.mayRelay() {
		return errAuthRequired
	}
	// relayctl has no local mailboxes: every recipient is relayed and
	// needs a domain (the bare "postmaster" of RFC 5321 §4.5.1 included).
	if at := strings.LastIndexByte(to, '@'); at <= 0 || at == len(to)-1 {
		return errBadRecipient
	}
	for _, r := range ss.rcpts {
		if strings.EqualFold(r.Address, to) {
			return nil // duplicate RCPT: one delivery is enough
		}
	}
	for _, d := range ss.dropped {
		if strings.EqualFold(d.addr, to) {
			return nil
		}
	}
	if len(ss.rcpts)+len(ss.dropped) >= ss.rt.cfg.MaxRecipients {
		return errTooManyRecipients
	}
	if check := ss.rt.cfg.RcptCheck; check != nil {
		if serr := check(context.Background(), ss.from, to); serr != nil {
			ss.s.log.Info("recipient refused", "client", ss.ipS, "from", ss.from, "rcpt", to, "reply", serr.Message)
			ss.refusedEvent(to, serr)
			return serr
		}
	}
	if drop := ss.rt.cfg.RcptDrop; drop != nil {
		if reason, ok := drop(context.Background(), ss.from, to); ok {
			ss.s.log.Info("recipient accepted, will be dropped", "client", ss.ipS, "from", ss.from, "rcpt", to, "reason", reason)
			ss.dropped = append(ss.dropped, droppedRcpt{addr: to, reason: reason})
			return nil
		}
	}
	r := queue.Recipient{Address: to, State: queue.StateQueued}
	if opts != nil {
		for _, n := range opts.Notify {
			r.Notify = append(r.Notify, string(n))
		}
		if opts.OriginalRecipient != "" {
			typ := string(opts.OriginalRecipientType)
			if typ == "" {
				typ = string(smtp.DSNAddressTypeRFC822)
			}
			r.ORcpt = strings.ToLower(typ) + ";" + opts.OriginalRecipient
		}
	}
	ss.rcpts = append(ss.rcpts, r)
	return nil
}

func (ss *session) refusedEvent(to string, serr *smtp.SMTPError) {
	fn := ss.rt.cfg.Events
	if fn == nil {
		return
	}
	now := ss.rt.cfg.Now()
	e := events.Event{
		Time: now, Sender: ss.from, Recipient: to, Domain: domainOf(to),
		Code: serr.Code, Response: serr.Message, Result: events.Bounced, Queued: now,
	}
	if ec := serr.EnhancedCode; ec != smtp.EnhancedCodeNotSet && ec != smtp.NoEnhancedCode {
		e.EnhancedCode = fmt.Sprintf("%d.%d.%d", ec[0], ec[1], ec[2])
	}
	fn(e)
}

// droppedEvents reports the dropped recipients of the message accepted
// as id: the delivery log, metrics and `relayctl report` count them.
func (ss *session) droppedEvents(id, msgID, stream string, now time.Time) {
	fn := ss.rt.cfg.Events
	if fn == nil {
		return
	}
	for _, d := range ss.dropped {
		fn(events.Event{
			Time: now, QueueID: id, MessageID: msgID, Sender: ss.from, Recipient: d.addr,
			Domain: domainOf(d.addr), Stream: stream, Response: d.reason, Result: events.Suppressed, Queued: now,
		})
	}
}

func (ss *session) Data(r io.Reader) error {
	cfg := ss.rt.cfg
	if !ss.mayRelay() || len(ss.rcpts)+len(ss.dropped) == 0 {
		return errAuthRequired
	}
	if ss.tc != nil {
		_ = ss.conn.Conn().SetReadDeadline(time.Now().Add(cfg.DataTimeout))
	}
	br := &budgetReader{r: io.LimitReader(r, cfg.MaxMessageBytes+1), total: &ss.s.buffered, limit: cfg.MaxBufferedBytes}
	defer br.release()
	msg, err := io.ReadAll(br)
	if errors.Is(err, errBusy) {
		ss.s.log.Warn("message refused: too much message data in memory", "client", ss.ipS, "max_buffered_bytes", cfg.MaxBufferedBytes)
		return errBusy
	}
	if errors.Is(err, smtp.ErrTooLongLine) {
		// RFC 5321 §4.5.3.1.6 allows 1000 octets; go-smtp accepts 2000.
		// Permanent: resending the same message cannot help. go-smtp
		// closes the connection after this reply.
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Message has a line longer than 2000 octets (RFC 5321 section 4.5.3.1.6)"}
	}
	if err != nil {
		var serr *smtp.SMTPError
		if errors.As(err, &serr) {
			return serr
		}
		ss.s.log.Warn("reading data failed", "client", ss.ipS, "err", err)
		return errReadData
	}
	if int64(len(msg)) > cfg.MaxMessageBytes {
		return smtp.ErrDataTooLarge
	}
	// RFC 5321 §2.3.8; see checkLineEndings.
	if off, err := checkLineEndings(msg); err != nil {
		ss.s.log.Warn("message refused: bare CR or LF (possible SMTP smuggling)", "client", ss.ipS, "from", ss.from, "offset", off)
		what := "LF"
		if errors.Is(err, ErrBareCR) {
			what = "CR"
		}
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 6, 0},
			Message: fmt.Sprintf("Message contains a bare %s; lines must end with CRLF (RFC 5321 section 2.3.8)", what)}
	}

	fields, _ := parseHeader(msg)
	fromAddrs, err := fromAddresses(fields)
	if err != nil {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: headerProblem(err)}
	}
	if ss.user != nil {
		for _, a := range fromAddrs {
			if !allowedSender(ss.user.AllowedSenders, a) {
				ss.s.log.Warn("From header not allowed", "client", ss.ipS, "user", ss.user.Name, "from_header", a)
				return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "From header address not allowed for this user"}
			}
		}
	}

	now := cfg.Now()
	// Submission fix-ups (RFC 6409 §8.2 Date, §8.3 Message-ID).
	var added bytes.Buffer
	msgIDs := lookup(fields, "Message-ID")
	msgID := ""
	if len(msgIDs) > 0 {
		msgID = msgIDs[0]
	} else {
		msgID = newMessageID(cfg.Hostname, now)
		added.WriteString("Message-ID: " + msgID + "\r\n")
	}
	if len(lookup(fields, "Date")) == 0 {
		added.WriteString("Date: " + now.Format(time.RFC1123Z) + "\r\n")
	}
	body := msg
	if added.Len() > 0 {
		body = make([]byte, 0, added.Len()+len(msg))
		body = append(append(body, added.Bytes()...), msg...)
	}

	if len(ss.rcpts) == 0 {
		// Every recipient was dropped: nothing to store or deliver. The
		// client gets the same 250 as for a queued message; the id it
		// names is the one in the suppressed events.
		id := queue.NewID(now)
		ss.droppedEvents(id, msgID, "", now)
		ss.s.log.Info("dropped", "id", id, "client", ss.ipS, "from", ss.from, "rcpts", len(ss.dropped), "message_id", msgID)
		return queuedAs(id)
	}

	var sig string
	if opt, ok := ss.signer(domainOf(fromAddrs[0])); ok {
		sig, err = dkim.SignatureHeader(body, opt)
		if err != nil {
			ss.s.log.Error("dkim signing failed", "domain", opt.Domain, "selector", opt.Selector, "err", err)
			return errSigning
		}
	}

	tlsInfo := ""
	if st, ok := ss.conn.TLSConnectionState(); ok {
		tlsInfo = fmt.Sprintf("using %s with cipher %s", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
	}
	userName := ""
	if ss.user != nil {
		userName = ss.user.Name
	}
	addrs := make([]string, len(ss.rcpts))
	for i, r := range ss.rcpts {
		addrs[i] = r.Address
	}
	received := receivedField(ss.conn.Hostname(), ss.ipS, cfg.Hostname, tlsInfo, userName, addrs, now)

	env := &queue.Envelope{
		From:         ss.from,
		Received:     now,
		Size:         int64(len(sig) + len(received) + len(body)),
		MessageID:    msgID,
		AuthUser:     userName,
		ClientIP:     ss.ipS,
		EnvID:        ss.mailOpts.EnvelopeID,
		Ret:          queue.DSNRet(ss.mailOpts.Return),
		Body8BitMIME: ss.mailOpts.Body == smtp.Body8BitMIME,
		SMTPUTF8:     ss.mailOpts.UTF8,
		Recipients:   append([]queue.Recipient(nil), ss.rcpts...),
	}
	if cfg.Classify != nil {
		h := mail.Header{}
		for _, f := range fields {
			k := textproto.CanonicalMIMEHeaderKey(f.Name)
			h[k] = append(h[k], f.Value)
		}
		cfg.Classify(env, h)
	}
	content := io.MultiReader(strings.NewReader(sig), strings.NewReader(received), bytes.NewReader(body))
	// RFC 5321 §6.1: 250 only once the message is safely stored.
	id, err := ss.s.q.Enqueue(env, content)
	if err != nil {
		ss.s.log.Error("queueing failed", "client", ss.ipS, "from", ss.from, "err", err)
		if errors.Is(err, queue.ErrStorage) {
			return errStorage
		}
		return errQueue
	}
	ss.s.log.Info("queued", "id", id, "client", ss.ipS, "user", userName, "from", ss.from,
		"rcpts", len(addrs), "size", env.Size, "message_id", msgID, "dkim", sig != "")
	if cfg.Queued != nil {
		cfg.Queued(env)
	}
	ss.droppedEvents(id, msgID, env.Stream, now)
	return queuedAs(id)
}

// queuedAs is the 250 that names the queue id, so the client can quote
// it (go-smtp writes the reply of a returned *SMTPError as it is).
func queuedAs(id string) error {
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "OK: queued as " + id}
}

func headerProblem(err error) string {
	switch {
	case errors.Is(err, ErrNoFrom):
		return "Message has no From header field (RFC 5322 section 3.6)"
	case errors.Is(err, ErrManyFrom):
		return "Message has more than one From header field (RFC 5322 section 3.6)"
	default:
		return "From header field is not a valid address list (RFC 5322 section 3.6.2)"
	}
}

// signer picks the DKIM key for the From domain: an exact match, else
// the closest parent domain (still aligned for DMARC's relaxed mode).
// Nothing is signed when every recipient's route turns signing off.
func (ss *session) signer(fromDomain string) (dkim.SignOptions, bool) {
	cfg := ss.rt.cfg
	if len(cfg.DKIM) == 0 || fromDomain == "" || ss.allUnsigned() {
		return dkim.SignOptions{}, false
	}
	best, bestLen := -1, -1
	for i, o := range cfg.DKIM {
		d := strings.ToLower(strings.TrimSuffix(o.Domain, "."))
		if (fromDomain == d || strings.HasSuffix(fromDomain, "."+d)) && len(d) > bestLen {
			best, bestLen = i, len(d)
		}
	}
	if best < 0 {
		return dkim.SignOptions{}, false
	}
	return cfg.DKIM[best], true
}

func (ss *session) allUnsigned() bool {
	list := ss.rt.cfg.UnsignedDomains
	if len(list) == 0 {
		return false
	}
	for _, r := range ss.rcpts {
		d := domainOf(r.Address)
		hit := false
		for _, u := range list {
			if u == "*" || strings.EqualFold(u, d) {
				hit = true
				break
			}
		}
		if !hit {
			return false
		}
	}
	return true
}

// Reset ends the transaction. go-smtp calls it after the reply to DATA
// has been written, so during shutdown this is where a finished session
// is closed.
func (ss *session) Reset() {
	ss.from = ""
	ss.mailOpts = smtp.MailOptions{}
	ss.rcpts = nil
	ss.dropped = nil
	if ss.tc != nil {
		ss.tc.busy.Store(false)
	}
}

func (ss *session) Logout() error {
	if ss.tc != nil {
		ss.tc.busy.Store(false)
	}
	return nil
}

// budgetReader counts what a session reads into memory against the
// server-wide MaxBufferedBytes; release gives it back.
type budgetReader struct {
	r     io.Reader
	total *atomic.Int64
	limit int64
	n     int64
}

func (b *budgetReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 {
		b.n += int64(n)
		if b.total.Add(int64(n)) > b.limit {
			return n, errBusy
		}
	}
	return n, err
}

func (b *budgetReader) release() { b.total.Add(-b.n) }
