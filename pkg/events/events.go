// Package events defines the delivery event relayctl's relay writes for
// every delivery attempt of every recipient: one JSON object per line in
// the delivery log, the payload of webhooks, the input of `relayctl
// report`, and the source of delivery metrics.
package events

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"
)

// Result of one attempt for one recipient.
type Result string

// Results.
const (
	Delivered Result = "delivered"
	Deferred  Result = "deferred"
	Bounced   Result = "bounced"
	Expired   Result = "expired" // gave up after the queue lifetime: also a bounce
	// Suppressed: accepted at RCPT TO but never sent, because the
	// recipient is on the suppression list and its action is "drop". One
	// event per dropped recipient, Attempt 0, Response the reason.
	Suppressed Result = "suppressed"
)

// Event is one delivery attempt for one recipient.
type Event struct {
	Time         time.Time `json:"time"`
	QueueID      string    `json:"queue_id"`
	MessageID    string    `json:"message_id,omitempty"`
	Sender       string    `json:"sender"`
	Recipient    string    `json:"recipient"`
	Domain       string    `json:"domain"` // recipient domain
	Stream       string    `json:"stream,omitempty"`
	RemoteHost   string    `json:"remote_host,omitempty"`
	RemoteIP     string    `json:"remote_ip,omitempty"`
	TLS          bool      `json:"tls"`
	Code         int       `json:"code,omitempty"`          // SMTP reply code, 0 when no reply (DNS/network)
	EnhancedCode string    `json:"enhanced_code,omitempty"` // RFC 3463, e.g. "5.1.1"
	Response     string    `json:"response,omitempty"`      // reply text or error
	Result       Result    `json:"result"`
	Attempt      int       `json:"attempt"`
	// Queued is when the message was accepted, so delivery latency is
	// Time - Queued.
	Queued time.Time `json:"queued"`
}

// Writer appends events as JSON lines; safe for concurrent use.
type Writer struct {
	mu sync.Mutex
	w  io.Writer
}

// NewWriter returns a Writer on w (usually an *os.File opened O_APPEND).
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Write appends one event as a line.
func (w *Writer) Write(e Event) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("events: %w", err)
	}
	b = append(b, '\n')
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, err := w.w.Write(b); err != nil {
		return fmt.Errorf("events: write: %w", err)
	}
	return nil
}

// Read calls fn for every event in r; malformed lines are reported with
// their line number.
func Read(r io.Reader, fn func(Event) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	line := 0
	for sc.Scan() {
		line++
		if len(sc.Bytes()) == 0 {
			continue
		}
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("events: line %d: %w", line, err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return sc.Err()
}
