// Package summary turns the relay's delivery log (pkg/events JSON lines,
// one per attempt per recipient) into the operator's summary: how many
// recipients were delivered, are still deferred, or bounced; the bounce
// rate; the destinations that fail most and their most common reply; and
// how long delivery took (accept → delivered), as median and 99th
// percentile.
//
// A recipient counts once, with the outcome of its last attempt in the
// window. Bounces are permanent failures (RFC 5321 §4.2.1 5yz) and
// expiries (RFC 5321 §4.5.4.1: gave up retrying).
package summary

import (
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/relayctl/relayctl/pkg/events"
)

// Summary of a window of the delivery log.
type Summary struct {
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`

	Recipients int `json:"recipients"` // distinct (message, recipient) pairs
	Delivered  int `json:"delivered"`
	Deferred   int `json:"deferred"` // last attempt deferred: still queued
	Bounced    int `json:"bounced"`  // bounced or expired
	Expired    int `json:"expired"`  // of which expired
	// Rejected counts recipients the relay itself refused at RCPT TO
	// (suppression list): never sent, so not in the rates.
	Rejected int `json:"rejected"`
	// Suppressed counts recipients accepted but dropped because they are
	// on the suppression list (action drop): never sent, not in the rates.
	Suppressed int `json:"suppressed"`

	Attempts         int `json:"attempts"`
	DeferredAttempts int `json:"deferred_attempts"`
	TLSAttempts      int `json:"tls_attempts"` // attempts that reached a server over TLS

	// BounceRate is bounced / (delivered + bounced); DeferralRate is
	// deferred attempts / attempts; TLSRate is TLS attempts / attempts
	// that got an SMTP reply.
	BounceRate   float64 `json:"bounce_rate"`
	DeferralRate float64 `json:"deferral_rate"`
	TLSRate      float64 `json:"tls_rate"`

	// Latency from acceptance to delivery.
	MedianDelivery Duration `json:"median_delivery"`
	P99Delivery    Duration `json:"p99_delivery"`

	TopFailing []Domain `json:"top_failing"`
}

// Duration marshals as a Go duration string ("1m30s").
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Domain is one destination domain with failures.
type Domain struct {
	Domain    string `json:"domain"`
	Bounced   int    `json:"bounced"`
	Deferred  int    `json:"deferred"`
	Delivered int    `json:"delivered"`
	// FailedAttempts counts every deferred, bounced or expired attempt.
	FailedAttempts int `json:"failed_attempts"`
	// TopResponse is the most common failure reply (numbers and
	// addresses kept as they are), and how often it was seen.
	TopResponse      string `json:"top_response"`
	TopResponseCount int    `json:"top_response_count"`
}

type key struct{ queue, rcpt string }

// Summarize reads events from r and summarises those at or after since
// (zero: all) up to until (zero: no limit); top is how many failing
// domains to list.
func Summarize(r io.Reader, since, until time.Time, top int) (*Summary, error) {
	s := &Summary{Since: since, Until: until, TopFailing: []Domain{}}
	last := map[key]events.Event{}
	var order []key
	var latencies []time.Duration
	replied := 0
	responses := map[string]map[string]int{} // domain → normalised reply → count
	err := events.Read(r, func(e events.Event) error {
		if (!since.IsZero() && e.Time.Before(since)) || (!until.IsZero() && e.Time.After(until)) {
			return nil
		}
		if e.QueueID == "" && e.Attempt == 0 {
			s.Rejected++ // refused at submission: no message, no attempt
			return nil
		}
		if e.Result == events.Suppressed {
			s.Suppressed++ // dropped at submission: never attempted
			return nil
		}
		s.Attempts++
		if e.Code != 0 {
			replied++
			if e.TLS {
				s.TLSAttempts++
			}
		}
		if e.Result == events.Deferred {
			s.DeferredAttempts++
		}
		if e.Result != events.Delivered {
			d := strings.ToLower(e.Domain)
			if responses[d] == nil {
				responses[d] = map[string]int{}
			}
			responses[d][response(e)]++
		}
		k := key{e.QueueID, strings.ToLower(e.Recipient)}
		prev, seen := last[k]
		if !seen {
			order = append(order, k)
		}
		if !seen || !e.Time.Before(prev.Time) {
			last[k] = e
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	doms := map[string]*Domain{}
	for _, k := range order {
		e := last[k]
		s.Recipients++
		d := strings.ToLower(e.Domain)
		if doms[d] == nil {
			doms[d] = &Domain{Domain: d}
		}
		switch e.Result {
		case events.Delivered:
			s.Delivered++
			doms[d].Delivered++
			if !e.Queued.IsZero() && !e.Time.Before(e.Queued) {
				latencies = append(latencies, e.Time.Sub(e.Queued))
			}
		case events.Deferred:
			s.Deferred++
			doms[d].Deferred++
		case events.Bounced, events.Expired:
			s.Bounced++
			doms[d].Bounced++
			if e.Result == events.Expired {
				s.Expired++
			}
		}
	}
	if n := s.Delivered + s.Bounced; n > 0 {
		s.BounceRate = float64(s.Bounced) / float64(n)
	}
	if s.Attempts > 0 {
		s.DeferralRate = float64(s.DeferredAttempts) / float64(s.Attempts)
	}
	if replied > 0 {
		s.TLSRate = float64(s.TLSAttempts) / float64(replied)
	}
	slices.Sort(latencies)
	s.MedianDelivery = Duration(Percentile(latencies, 50))
	s.P99Delivery = Duration(Percentile(latencies, 99))

	var failing []Domain
	for name, d := range doms {
		if d.Bounced+d.Deferred == 0 {
			continue
		}
		for resp, n := range responses[name] {
			d.FailedAttempts += n
			if n > d.TopResponseCount || (n == d.TopResponseCount && resp < d.TopResponse) {
				d.TopResponse, d.TopResponseCount = resp, n
			}
		}
		failing = append(failing, *d)
	}
	sort.Slice(failing, func(i, j int) bool {
		a, b := failing[i], failing[j]
		if a.Bounced+a.Deferred != b.Bounced+b.Deferred {
			return a.Bounced+a.Deferred > b.Bounced+b.Deferred
		}
		if a.FailedAttempts != b.FailedAttempts {
			return a.FailedAttempts > b.FailedAttempts
		}
		return a.Domain < b.Domain
	})
	if top > 0 && len(failing) > top {
		failing = failing[:top]
	}
	if failing != nil {
		s.TopFailing = failing
	}
	return s, nil
}

var spaces = regexp.MustCompile(`\s+`)

// response renders an event's reply for grouping: "421 4.7.0 text".
func response(e events.Event) string {
	r := strings.TrimSpace(spaces.ReplaceAllString(e.Response, " "))
	prefix := ""
	if e.Code != 0 {
		prefix = fmt.Sprint(e.Code)
		if e.EnhancedCode != "" {
			prefix += " " + e.EnhancedCode
		}
	}
	if prefix != "" && !strings.HasPrefix(r, prefix) {
		r = strings.TrimSpace(prefix + " " + r)
	}
	if len(r) > 200 {
		r = r[:200]
	}
	return r
}

// Percentile returns the p-th percentile (nearest rank) of sorted values;
// 0 for none.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(float64(len(sorted))*p/100+0.999999) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return sorted[rank]
}
