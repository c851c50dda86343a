// Package stream sorts outgoing mail into delivery streams so that
// transactional mail (receipts, password resets) is never stuck behind a
// marketing batch and never shares its reputation: each stream has a
// priority (the queue hands out due messages of a higher-priority stream
// first) and may bind its own source IP address and HELO name (RFC 5321
// §4.1.1.1; the name should match the address's reverse DNS), and may cap
// how many of its messages are delivered at once, so a low-priority
// backlog never holds every delivery slot.
//
// A message's stream is chosen, in order, by its X-Relayctl-Stream
// header field (when it names a configured stream), the authenticated
// submission user, the sender's domain, else the default stream.
package stream

import (
	"fmt"
	"net"
	"net/mail"
	"strings"
)

// Header is the field an application sets to choose a stream.
const Header = "X-Relayctl-Stream"

// The default streams.
const (
	Transactional = "transactional"
	Bulk          = "bulk"
)

// Stream is one delivery stream.
type Stream struct {
	Name string `json:"name"`
	// Priority: due messages of a stream with priority above 0 are sent
	// before all others.
	Priority int `json:"priority"`
	// SourceIP is the local address to connect from ("" any).
	SourceIP string `json:"source_ip,omitempty"`
	// Hello is the EHLO name ("" the relay's hostname).
	Hello string `json:"hello,omitempty"`
	// MaxInflight caps the stream's messages being delivered at once
	// (0: no cap beyond the engine's concurrency), so a bulk backlog
	// never takes every delivery slot from transactional mail.
	MaxInflight int `json:"max_inflight,omitempty"`
}

// Config is the streams and the rules that choose them.
type Config struct {
	Streams []Stream
	// Users and SenderDomains map a submission user or a sender domain
	// to a stream name.
	Users         map[string]string
	SenderDomains map[string]string
	// Default is the stream of everything else ("" → transactional).
	Default string
}

// Defaults: transactional (priority 10) and bulk (priority 0).
func Defaults() []Stream {
	return []Stream{{Name: Transactional, Priority: 10}, {Name: Bulk, Priority: 0}}
}

// Policy classifies messages and answers stream settings.
type Policy struct {
	byName  map[string]Stream
	cfg     Config
	users   map[string]string
	domains map[string]string
}

// New validates cfg; without streams it uses Defaults().
func New(cfg Config) (*Policy, error) {
	if len(cfg.Streams) == 0 {
		cfg.Streams = Defaults()
	}
	if cfg.Default == "" {
		cfg.Default = Transactional
	}
	p := &Policy{byName: map[string]Stream{}, cfg: cfg, users: map[string]string{}, domains: map[string]string{}}
	for _, s := range cfg.Streams {
		s.Name = strings.ToLower(strings.TrimSpace(s.Name))
		if s.Name == "" || strings.ContainsAny(s.Name, " \t\r\n") {
			return nil, fmt.Errorf("stream: name %q: want a single word", s.Name)
		}
		if s.SourceIP != "" && net.ParseIP(s.SourceIP) == nil {
			return nil, fmt.Errorf("stream %s: source_ip %q is not an IP address", s.Name, s.SourceIP)
		}
		if strings.ContainsAny(s.Hello, " \t\r\n") {
			return nil, fmt.Errorf("stream %s: hello %q: want a host name", s.Name, s.Hello)
		}
		if s.MaxInflight < 0 {
			return nil, fmt.Errorf("stream %s: max_inflight %d: want 0 (no cap) or more", s.Name, s.MaxInflight)
		}
		if _, dup := p.byName[s.Name]; dup {
			return nil, fmt.Errorf("stream %s: defined twice", s.Name)
		}
		p.byName[s.Name] = s
	}
	check := func(what, key, name string) (string, error) {
		name = strings.ToLower(name)
		if _, ok := p.byName[name]; !ok {
			return "", fmt.Errorf("stream: %s %q maps to unknown stream %q", what, key, name)
		}
		return name, nil
	}
	var err error
	if p.cfg.Default, err = check("default", "", cfg.Default); err != nil {
		return nil, err
	}
	for u, n := range cfg.Users {
		if p.users[u], err = check("user", u, n); err != nil {
			return nil, err
		}
	}
	for d, n := range cfg.SenderDomains {
		if p.domains[strings.ToLower(strings.TrimSuffix(d, "."))], err = check("sender domain", d, n); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Classify picks the stream of a message from its header, submission
// user and envelope sender.
func (p *Policy) Classify(header mail.Header, authUser, sender string) string {
	if v := strings.ToLower(strings.TrimSpace(header.Get(Header))); v != "" {
		if _, ok := p.byName[v]; ok {
			return v
		}
	}
	if n, ok := p.users[authUser]; ok && authUser != "" {
		return n
	}
	if i := strings.LastIndexByte(sender, '@'); i >= 0 {
		d := strings.ToLower(sender[i+1:])
		for {
			if n, ok := p.domains[d]; ok {
				return n
			}
			j := strings.IndexByte(d, '.')
			if j < 0 {
				break
			}
			d = d[j+1:]
		}
	}
	return p.cfg.Default
}

// Get returns a stream's settings; an unknown name gets the default
// stream's settings under its own name.
func (p *Policy) Get(name string) Stream {
	if s, ok := p.byName[strings.ToLower(name)]; ok {
		return s
	}
	s := p.byName[p.cfg.Default]
	s.Name = name
	return s
}

// Streams lists the configured streams.
func (p *Policy) Streams() []Stream { return append([]Stream(nil), p.cfg.Streams...) }

// Priority is the priority of the named stream; "" (like any unknown
// name) is the default stream.
func (p *Policy) Priority(name string) int {
	return p.Get(name).Priority
}

// MaxInflight is the named stream's cap on deliveries in flight (0:
// none); "" is the default stream.
func (p *Policy) MaxInflight(name string) int {
	return p.Get(name).MaxInflight
}

// Identity is the source IP and EHLO name of the named stream ("" for
// the relay's defaults).
func (p *Policy) Identity(name string) (sourceIP, hello string) {
	s := p.Get(name)
	return s.SourceIP, s.Hello
}
