// Package throttle keeps the relay under the limits big mailbox providers
// enforce per sending IP: at most so many simultaneous connections, so
// many messages a minute, and so many messages on one connection, per
// destination domain. When a receiver answers 421 (RFC 5321 §4.2.3:
// service not available, closing) or a 4.7.x enhanced code (RFC 3463:
// security or policy status — the codes providers use for rate limits),
// the whole destination is paused for a while, not just that message
// (greylisting, which shares those codes, is told apart by its text),
// with the pause doubling while the refusals continue.
//
// The delivery engine asks Reserve before each message to a domain; when
// the answer is "not now" it postpones the recipients there until the
// given time without counting an attempt.
package throttle

import (
	"sort"
	"strings"
	"sync"
	"time"
)

// Limits for one destination; zero fields mean no limit.
type Limits struct {
	MaxConnections int `json:"max_connections,omitempty"`
	PerMinute      int `json:"per_minute,omitempty"`
	PerConnection  int `json:"per_connection,omitempty"`
}

// Config of a Throttle.
type Config struct {
	// Default applies to every domain without an entry in Domains.
	Default Limits
	// Domains holds limits by destination domain; an entry also covers
	// its subdomains ("yahoo.com" covers "mail.yahoo.com").
	Domains map[string]Limits
	// PauseInitial is the first pause after a throttling reply (0 → 5 min);
	// each further one while paused-and-retried doubles it up to PauseMax
	// (0 → 1 h). A delivery to the domain resets it.
	PauseInitial, PauseMax time.Duration
	Now                    func() time.Time
}

// Throttle tracks every destination; safe for concurrent use.
type Throttle struct {
	cfg Config

	mu  sync.Mutex
	dom map[string]*state
}

type state struct {
	conns       int
	sent        []time.Time // send times within the last minute, oldest first
	pausedUntil time.Time
	pause       time.Duration // current pause length
	reason      string
}

// New returns a Throttle.
func New(cfg Config) *Throttle {
	if cfg.PauseInitial <= 0 {
		cfg.PauseInitial = 5 * time.Minute
	}
	if cfg.PauseMax <= 0 {
		cfg.PauseMax = time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	dom := make(map[string]Limits, len(cfg.Domains))
	for d, l := range cfg.Domains {
		dom[normalize(d)] = l
	}
	cfg.Domains = dom
	return &Throttle{cfg: cfg, dom: map[string]*state{}}
}

func normalize(d string) string {
	return strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
}

// Limits returns the limits for domain: its own entry, the closest parent
// domain's, else the default.
func (t *Throttle) Limits(domain string) Limits {
	d := normalize(domain)
	for {
		if l, ok := t.cfg.Domains[d]; ok {
			return l
		}
		i := strings.IndexByte(d, '.')
		if i < 0 {
			return t.cfg.Default
		}
		d = d[i+1:]
	}
}

func (t *Throttle) state(d string) *state {
	s := t.dom[d]
	if s == nil {
		s = &state{}
		t.dom[d] = s
	}
	return s
}

// connRetry is how soon to look again when only a connection slot was
// missing.
const connRetry = 2 * time.Second

// Reserve asks to deliver one message to domain now. When ok, the caller
// must call release once the delivery is over. When not, at is when to
// try again: the end of a pause, when a per-minute slot frees, or in a
// moment for a connection slot.
func (t *Throttle) Reserve(domain string) (release func(), at time.Time, ok bool) {
	d := normalize(domain)
	l := t.Limits(d)
	now := t.cfg.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.state(d)
	if now.Before(s.pausedUntil) {
		return nil, s.pausedUntil, false
	}
	if l.MaxConnections > 0 && s.conns >= l.MaxConnections {
		return nil, now.Add(connRetry), false
	}
	if l.PerMinute > 0 {
		cut := 0
		for cut < len(s.sent) && !s.sent[cut].After(now.Add(-time.Minute)) {
			cut++
		}
		s.sent = s.sent[cut:]
		if len(s.sent) >= l.PerMinute {
			return nil, s.sent[0].Add(time.Minute), false
		}
		s.sent = append(s.sent, now)
	}
	s.conns++
	var once sync.Once
	return func() {
		once.Do(func() {
			t.mu.Lock()
			s.conns--
			t.mu.Unlock()
		})
	}, time.Time{}, true
}

// PerConnection is how many messages one connection to domain may carry
// (0: no limit).
func (t *Throttle) PerConnection(domain string) int { return t.Limits(domain).PerConnection }

// IsThrottling reports whether a reply asks the sender to slow down: 421,
// or a 4xx with a 4.7.x enhanced code — except greylisting, which uses
// the same codes (451 4.7.1 "greylisted") and only wants a retry of that
// message later.
func IsThrottling(code int, enhanced, response string) bool {
	if code == 421 {
		return true
	}
	if code < 400 || code >= 500 || !strings.HasPrefix(enhanced, "4.7.") {
		return false
	}
	r := strings.ToLower(response)
	return !strings.Contains(r, "greylist") && !strings.Contains(r, "graylist")
}

// Observe learns from a delivery result to domain: a throttling reply
// pauses the domain (the pause doubling each time, up to PauseMax); a
// 2xx ends the pause history. It reports the pause end when it paused.
func (t *Throttle) Observe(domain string, code int, enhanced, response string) (until time.Time, paused bool) {
	d := normalize(domain)
	now := t.cfg.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.state(d)
	switch {
	case code >= 200 && code < 300:
		s.pause = 0
		s.reason = ""
		return time.Time{}, false
	case IsThrottling(code, enhanced, response):
		if now.Before(s.pausedUntil) {
			return s.pausedUntil, true // answers to attempts already under way
		}
		if s.pause == 0 {
			s.pause = t.cfg.PauseInitial
		} else {
			s.pause = min(2*s.pause, t.cfg.PauseMax)
		}
		s.pausedUntil = now.Add(s.pause)
		s.reason = response
		return s.pausedUntil, true
	}
	return time.Time{}, false
}

// Paused reports whether domain is paused and until when.
func (t *Throttle) Paused(domain string) (time.Time, bool) {
	now := t.cfg.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.dom[normalize(domain)]; s != nil && now.Before(s.pausedUntil) {
		return s.pausedUntil, true
	}
	return time.Time{}, false
}

// Destination is a domain's current state, for metrics and operators.
type Destination struct {
	Domain      string    `json:"domain"`
	Connections int       `json:"connections"`
	LastMinute  int       `json:"last_minute"`
	PausedUntil time.Time `json:"paused_until,omitzero"`
	Reason      string    `json:"reason,omitempty"`
}

// Snapshot lists the domains with connections, recent sends or a pause.
func (t *Throttle) Snapshot() []Destination {
	now := t.cfg.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Destination
	for d, s := range t.dom {
		n := 0
		for _, ts := range s.sent {
			if ts.After(now.Add(-time.Minute)) {
				n++
			}
		}
		dst := Destination{Domain: d, Connections: s.conns, LastMinute: n}
		if now.Before(s.pausedUntil) {
			dst.PausedUntil, dst.Reason = s.pausedUntil, s.reason
		}
		if dst.Connections == 0 && n == 0 && dst.PausedUntil.IsZero() {
			if s.pause == 0 {
				delete(t.dom, d) // forget idle domains
			}
			continue
		}
		out = append(out, dst)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Domain < out[j].Domain })
	return out
}
