// Package metrics exposes the relay's numbers in the Prometheus text
// exposition format (prometheus/client_golang): messages accepted and
// recipients rejected at submission, delivery attempts by result and
// destination domain, TLS use, queue size and oldest message age, and
// the delivery latency histogram (accepted → delivered). Deferral and
// bounce rates are ratios of the attempt counters, computed in PromQL.
//
// Each Metrics has its own registry: nothing is registered globally.
package metrics

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/relayctl/relayctl/pkg/events"
)

// QueueStats reports the queue's size and the arrival time of its oldest
// message (zero when empty).
type QueueStats func() (messages int, oldest time.Time, err error)

// Options for New.
type Options struct {
	Queue QueueStats
	// MaxDomains caps the distinct destination-domain label values; later
	// domains are counted as "other". 0 → 200.
	MaxDomains int
	Now        func() time.Time
}

// Metrics collects and serves the relay's metrics; safe for concurrent
// use.
type Metrics struct {
	reg  *prometheus.Registry
	opts Options

	accepted   prometheus.Counter
	acceptedRc prometheus.Counter
	rejected   *prometheus.CounterVec
	attempts   *prometheus.CounterVec
	tls        *prometheus.CounterVec
	latency    prometheus.Histogram
	suppressed *prometheus.CounterVec
	dropped    prometheus.Counter

	mu      sync.Mutex
	domains map[string]bool
}

// New builds the metrics and registers them (plus the Go runtime and
// process collectors) in a fresh registry.
func New(opts Options) *Metrics {
	if opts.MaxDomains <= 0 {
		opts.MaxDomains = 200
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m := &Metrics{reg: prometheus.NewRegistry(), opts: opts, domains: map[string]bool{}}
	m.accepted = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "relayctl_messages_accepted_total", Help: "Messages accepted (queued) at submission.",
	})
	m.acceptedRc = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "relayctl_recipients_accepted_total", Help: "Recipients of the messages accepted at submission.",
	})
	m.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "relayctl_recipients_rejected_total", Help: "Recipients refused at submission, by reason.",
	}, []string{"reason"})
	m.attempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "relayctl_delivery_attempts_total", Help: "Delivery attempts per recipient, by result (delivered, deferred, bounced, expired) and destination domain.",
	}, []string{"result", "domain"})
	m.tls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "relayctl_delivery_tls_total", Help: "Delivery attempts that reached an SMTP server, by whether the session used TLS.",
	}, []string{"tls"})
	m.latency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "relayctl_delivery_latency_seconds",
		Help:    "Time from acceptance to delivery of each delivered recipient.",
		Buckets: []float64{0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 5 * 24 * 3600},
	})
	m.suppressed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "relayctl_suppressions_total", Help: "Addresses added to the suppression list by the relay, by source.",
	}, []string{"source"})
	m.dropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "relayctl_recipients_dropped_total", Help: "Recipients accepted at submission but dropped, never sent: on the suppression list with action drop.",
	})
	m.reg.MustRegister(m.accepted, m.acceptedRc, m.rejected, m.attempts, m.tls, m.latency, m.suppressed, m.dropped,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if opts.Queue != nil {
		m.reg.MustRegister(&queueCollector{stats: opts.Queue, now: opts.Now})
	}
	return m
}

// Registry is the registry, for extra collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Accepted counts one message accepted with rcpts recipients.
func (m *Metrics) Accepted(rcpts int) {
	m.accepted.Inc()
	m.acceptedRc.Add(float64(rcpts))
}

// Rejected counts a recipient refused at submission ("suppressed", …).
func (m *Metrics) Rejected(reason string) { m.rejected.WithLabelValues(reason).Inc() }

// Suppressed counts an address the relay put on the suppression list.
func (m *Metrics) Suppressed(source string) { m.suppressed.WithLabelValues(source).Inc() }

// Delivery counts one delivery attempt. An event without a queue id or
// attempt is a recipient refused at submission (the SMTP server reports
// those too): it counts as rejected; a suppressed event (a recipient
// dropped at submission) counts as dropped.
func (m *Metrics) Delivery(e events.Event) {
	if e.Result == events.Suppressed { // dropped at submission: no attempt
		m.dropped.Inc()
		return
	}
	if e.QueueID == "" && e.Attempt == 0 {
		reason := "policy"
		if strings.Contains(e.Response, "suppression list") {
			reason = "suppressed"
		}
		m.Rejected(reason)
		return
	}
	m.attempts.WithLabelValues(string(e.Result), m.domain(e.Domain)).Inc()
	if e.Code != 0 {
		m.tls.WithLabelValues(strconv.FormatBool(e.TLS)).Inc()
	}
	if e.Result == events.Delivered && !e.Queued.IsZero() {
		if d := e.Time.Sub(e.Queued); d >= 0 {
			m.latency.Observe(d.Seconds())
		}
	}
}

// domain bounds label cardinality.
func (m *Metrics) domain(d string) string {
	d = strings.ToLower(strings.TrimSuffix(d, "."))
	if d == "" {
		return "unknown"
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.domains[d] {
		return d
	}
	if len(m.domains) >= m.opts.MaxDomains {
		return "other"
	}
	m.domains[d] = true
	return d
}

type queueCollector struct {
	stats QueueStats
	now   func() time.Time
}

var (
	queueSizeDesc = prometheus.NewDesc("relayctl_queue_messages", "Messages in the queue.", nil, nil)
	queueAgeDesc  = prometheus.NewDesc("relayctl_queue_oldest_message_age_seconds", "Age of the oldest message in the queue (0 when empty).", nil, nil)
)

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueSizeDesc
	ch <- queueAgeDesc
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	n, oldest, err := c.stats()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(queueSizeDesc, err)
		return
	}
	age := 0.0
	if !oldest.IsZero() {
		age = max(0, c.now().Sub(oldest).Seconds())
	}
	ch <- prometheus.MustNewConstMetric(queueSizeDesc, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(queueAgeDesc, prometheus.GaugeValue, age)
}
