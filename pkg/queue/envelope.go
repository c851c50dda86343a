// Package queue is relayctl's durable on-disk mail queue.
//
// A message that was answered 250 (RFC 5321 §4.2.5: the server "has
// accepted responsibility") is on disk and fsync'd, file and directory,
// before the answer goes out, and stays there until every recipient is
// delivered, bounced or expired. Each recipient has its own state.
//
// This file holds the envelope types shared by the SMTP server (which
// creates envelopes), the queue (which stores them) and the delivery
// engine (which updates recipient states).
package queue

import "time"

// State of one recipient.
type State string

// Recipient states.
const (
	StateQueued    State = "queued"    // never tried yet
	StateDeferred  State = "deferred"  // tried, temporary failure; NextAttempt set
	StateDelivered State = "delivered" // 2xx from the receiver
	StateBounced   State = "bounced"   // 5xx, or gave up; a DSN was queued unless NOTIFY said otherwise
	StateHeld      State = "held"      // held by an operator; not tried until released
)

// Done reports whether the recipient needs no more attempts.
func (s State) Done() bool { return s == StateDelivered || s == StateBounced }

// DSN parameters of RFC 3461.
type DSNRet string

// RET values (RFC 3461 §4.3).
const (
	RetUnset DSNRet = ""
	RetFull  DSNRet = "FULL"
	RetHdrs  DSNRet = "HDRS"
)

// Recipient is one RCPT TO and its delivery state.
type Recipient struct {
	Address string `json:"address"`
	// Notify holds the RFC 3461 §4.1 NOTIFY keywords (NEVER, or any of
	// SUCCESS, FAILURE, DELAY); empty means the default (FAILURE, DELAY).
	Notify []string `json:"notify,omitempty"`
	// ORcpt is the RFC 3461 §4.2 original recipient ("rfc822;addr").
	ORcpt string `json:"orcpt,omitempty"`

	State         State     `json:"state"`
	Attempts      int       `json:"attempts"`
	NextAttempt   time.Time `json:"next_attempt,omitempty"`
	LastAttempt   time.Time `json:"last_attempt,omitempty"`
	LastResponse  string    `json:"last_response,omitempty"` // e.g. "451 4.7.1 greylisted" or a DNS/network error
	RemoteHost    string    `json:"remote_host,omitempty"`
	DelayNotified bool      `json:"delay_notified,omitempty"` // a "delayed" DSN was sent
	DoneAt        time.Time `json:"done_at,omitempty"`
}

// Envelope is everything the queue knows about a message except its
// content, which lives in its own file.
type Envelope struct {
	ID       string    `json:"id"`
	From     string    `json:"from"` // "" is the null reverse-path <> (bounces)
	Received time.Time `json:"received"`
	// Size is the content length in bytes.
	Size int64 `json:"size"`
	// MessageID is the Message-ID header value, for logs.
	MessageID string `json:"message_id,omitempty"`
	// AuthUser is the SMTP AUTH identity that submitted it ("" if trusted network).
	AuthUser string `json:"auth_user,omitempty"`
	// ClientIP is the submitting client's address.
	ClientIP string `json:"client_ip,omitempty"`
	// Stream is the delivery stream ("transactional", "bulk", …).
	Stream string `json:"stream,omitempty"`
	// EnvID and Ret are the RFC 3461 MAIL parameters.
	EnvID string `json:"envid,omitempty"`
	Ret   DSNRet `json:"ret,omitempty"`
	// Is8BitMIME and SMTPUTF8 record the MAIL BODY= / SMTPUTF8 parameters.
	Body8BitMIME bool `json:"body_8bitmime,omitempty"`
	SMTPUTF8     bool `json:"smtputf8,omitempty"`
	// IsDSN marks a bounce/delay notification we generated: never bounce it.
	IsDSN bool `json:"is_dsn,omitempty"`

	Recipients []Recipient `json:"recipients"`
}

// Pending reports whether any recipient still needs an attempt.
func (e *Envelope) Pending() bool {
	for _, r := range e.Recipients {
		if !r.State.Done() {
			return true
		}
	}
	return false
}
