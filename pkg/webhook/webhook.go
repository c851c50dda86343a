// Package webhook posts the relay's delivery events (pkg/events) to an
// application's HTTP endpoint, one JSON object per delivered, deferred or
// bounced recipient, so the application can update its own records
// without parsing logs.
//
// Every request is signed: X-Relayctl-Signature is "sha256=" followed by
// the hex HMAC-SHA256 (RFC 2104, FIPS 180-4) of the X-Relayctl-Timestamp
// value, a dot, and the body, keyed with the shared secret; receivers
// recompute it (Verify) and reject old timestamps to stop replays.
// Failed posts (network errors, timeouts, 408, 429, 5xx) are retried
// with exponential backoff and jitter; other 4xx answers are final.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/relayctl/relayctl/pkg/events"
)

// Header names.
const (
	HeaderSignature = "X-Relayctl-Signature"
	HeaderTimestamp = "X-Relayctl-Timestamp"
	HeaderEvent     = "X-Relayctl-Event"
)

// Config of a webhook.
type Config struct {
	URL    string
	Secret []byte
	// Results to post; nil → delivered, deferred, bounced, expired.
	Results []events.Result
	// Timeout per request; 0 → 10 s.
	Timeout time.Duration
	// Initial and Max backoff between tries (0 → 1 s and 5 min), and how
	// many tries in all (0 → 10).
	Initial, Max time.Duration
	Attempts     int
	// Buffer is how many events may wait; when full, new events are
	// dropped and counted. 0 → 10000.
	Buffer int
	Client *http.Client
	Log    *slog.Logger
	Now    func() time.Time
	// Sleep waits between retries (tests make it instant); nil → a timer
	// that stops when the context ends.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Stats count what happened to events.
type Stats struct {
	Sent, Failed, Dropped, Retries uint64
}

// Sender posts events from a buffer in order, one at a time.
type Sender struct {
	cfg Config
	ch  chan events.Event

	mu    sync.Mutex
	stats Stats
}

// New checks cfg and returns a Sender; call Run to start posting.
func New(cfg Config) (*Sender, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("webhook: url %q: want http(s)://host/path", cfg.URL)
	}
	if len(cfg.Secret) < 16 {
		return nil, errors.New("webhook: the secret must be at least 16 bytes")
	}
	if cfg.Results == nil {
		cfg.Results = []events.Result{events.Delivered, events.Deferred, events.Bounced, events.Expired}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Initial <= 0 {
		cfg.Initial = time.Second
	}
	if cfg.Max <= 0 {
		cfg.Max = 5 * time.Minute
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 10
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = 10000
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sleep == nil {
		cfg.Sleep = func(ctx context.Context, d time.Duration) error {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return &Sender{cfg: cfg, ch: make(chan events.Event, cfg.Buffer)}, nil
}

// Send queues e for posting without blocking; an event of a result not
// configured is ignored, and one that does not fit the buffer is dropped
// (counted in Stats.Dropped and logged).
func (s *Sender) Send(e events.Event) {
	if !slices.Contains(s.cfg.Results, e.Result) {
		return
	}
	select {
	case s.ch <- e:
	default:
		s.mu.Lock()
		s.stats.Dropped++
		s.mu.Unlock()
		s.cfg.Log.Warn("webhook buffer full: event dropped", "queue_id", e.QueueID, "recipient", e.Recipient, "result", e.Result)
	}
}

// Stats returns the counters.
func (s *Sender) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Pending is how many events wait in the buffer.
func (s *Sender) Pending() int { return len(s.ch) }

// Run posts events until ctx ends; events still buffered then are
// logged as not sent.
func (s *Sender) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			if n := len(s.ch); n > 0 {
				s.cfg.Log.Warn("webhook stopping with events not sent", "count", n)
			}
			return nil
		case e := <-s.ch:
			s.deliver(ctx, e)
		}
	}
}

func (s *Sender) deliver(ctx context.Context, e events.Event) {
	body, err := json.Marshal(e)
	if err != nil {
		s.count(func(st *Stats) { st.Failed++ })
		return
	}
	delay := s.cfg.Initial
	for try := 1; ; try++ {
		retry, err := s.post(ctx, e, body)
		if err == nil {
			s.count(func(st *Stats) { st.Sent++ })
			return
		}
		if !retry || try >= s.cfg.Attempts || ctx.Err() != nil {
			s.count(func(st *Stats) { st.Failed++ })
			s.cfg.Log.Error("webhook post failed", "url", s.cfg.URL, "queue_id", e.QueueID, "recipient", e.Recipient, "tries", try, "err", err)
			return
		}
		s.count(func(st *Stats) { st.Retries++ })
		s.cfg.Log.Warn("webhook post failed, retrying", "url", s.cfg.URL, "try", try, "in", delay, "err", err)
		// ±20 % jitter so many relays do not retry in step
		wait := time.Duration(float64(delay) * (0.8 + 0.4*rand.Float64()))
		if s.cfg.Sleep(ctx, wait) != nil {
			s.count(func(st *Stats) { st.Failed++ })
			return
		}
		delay = min(2*delay, s.cfg.Max)
	}
}

func (s *Sender) count(fn func(*Stats)) {
	s.mu.Lock()
	fn(&s.stats)
	s.mu.Unlock()
}

// post makes one try; retry says whether another try may succeed.
func (s *Sender) post(ctx context.Context, e events.Event, body []byte) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("webhook: %w", err)
	}
	ts := strconv.FormatInt(s.cfg.Now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "relayctl-webhook")
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(s.cfg.Secret, ts, body))
	req.Header.Set(HeaderEvent, string(e.Result))
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		return true, fmt.Errorf("webhook: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode >= 500:
		return true, fmt.Errorf("webhook: %s", resp.Status)
	}
	return false, fmt.Errorf("webhook: %s (not retried)", resp.Status)
}

// Sign returns the signature header value for a timestamp and body.
func Sign(secret []byte, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte("."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a request's signature and that its timestamp is within
// maxAge of now (replay protection); receivers written in Go can use it.
func Verify(secret []byte, timestamp, signature string, body []byte, now time.Time, maxAge time.Duration) error {
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return errors.New("webhook: bad timestamp")
	}
	if d := now.Sub(time.Unix(ts, 0)); d > maxAge || d < -maxAge {
		return errors.New("webhook: timestamp too old or in the future")
	}
	if !hmac.Equal([]byte(Sign(secret, timestamp, body)), []byte(signature)) {
		return errors.New("webhook: signature mismatch")
	}
	return nil
}
