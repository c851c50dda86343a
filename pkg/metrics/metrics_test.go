package metrics

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/relayctl/relayctl/pkg/events"
)

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestMetrics(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	m := New(Options{
		Queue:      func() (int, time.Time, error) { return 3, now.Add(-90 * time.Second), nil },
		MaxDomains: 2,
		Now:        func() time.Time { return now },
	})
	m.Accepted(2)
	m.Delivery(events.Event{Result: events.Bounced, Code: 550, Response: "<x@y> is on the suppression list"})
	m.Suppressed("hard-bounce")
	m.Delivery(events.Event{QueueID: "q1", Attempt: 1, Result: events.Delivered, Domain: "A.example", Code: 250, TLS: true, Queued: now, Time: now.Add(3 * time.Second)})
	m.Delivery(events.Event{QueueID: "q2", Attempt: 1, Result: events.Deferred, Domain: "b.example", Code: 421})
	m.Delivery(events.Event{QueueID: "q3", Attempt: 1, Result: events.Bounced, Domain: "c.example", Code: 550})
	m.Delivery(events.Event{QueueID: "q4", Attempt: 1, Result: events.Deferred, Domain: "d.example"}) // no reply: no TLS sample
	out := scrape(t, m)
	for _, want := range []string{
		"relayctl_messages_accepted_total 1",
		"relayctl_recipients_accepted_total 2",
		`relayctl_recipients_rejected_total{reason="suppressed"} 1`,
		`relayctl_suppressions_total{source="hard-bounce"} 1`,
		`relayctl_delivery_attempts_total{domain="a.example",result="delivered"} 1`,
		`relayctl_delivery_attempts_total{domain="b.example",result="deferred"} 1`,
		`relayctl_delivery_attempts_total{domain="other",result="bounced"} 1`,
		`relayctl_delivery_tls_total{tls="true"} 1`,
		`relayctl_delivery_tls_total{tls="false"} 2`,
		"relayctl_delivery_latency_seconds_count 1",
		`relayctl_delivery_latency_seconds_bucket{le="5"} 1`,
		`relayctl_delivery_latency_seconds_bucket{le="1"} 0`,
		"relayctl_queue_messages 3",
		"relayctl_queue_oldest_message_age_seconds 90",
		"go_goroutines",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
}

func TestQueueError(t *testing.T) {
	m := New(Options{Queue: func() (int, time.Time, error) { return 0, time.Time{}, errors.New("disk gone") }})
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("status %d", resp.StatusCode)
	}
}
