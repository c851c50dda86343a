// Package operate plugs the operator's tools into a relay before it
// starts: the admin socket (queue administration), the suppression list
// (refusals at RCPT TO, learning from bounces), Prometheus metrics,
// delivery webhooks, per-destination throttles and delivery streams. It
// reads their `serve.*` configuration keys and fills relay.Config.Hooks.
package operate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/relayctl/relayctl/cmd/cmdutil"
	suppresscmd "github.com/relayctl/relayctl/cmd/suppress"
	"github.com/relayctl/relayctl/pkg/admin"
	"github.com/relayctl/relayctl/pkg/delivery"
	"github.com/relayctl/relayctl/pkg/dsn"
	"github.com/relayctl/relayctl/pkg/events"
	"github.com/relayctl/relayctl/pkg/metrics"
	"github.com/relayctl/relayctl/pkg/queue"
	"github.com/relayctl/relayctl/pkg/relay"
	"github.com/relayctl/relayctl/pkg/stream"
	"github.com/relayctl/relayctl/pkg/suppress"
	"github.com/relayctl/relayctl/pkg/throttle"
	"github.com/relayctl/relayctl/pkg/webhook"
)

// Configuration keys.
const (
	KeyAdminSocket    = "serve.admin.socket"
	KeyMetricsListen  = "serve.metrics.listen"
	KeyWebhookURL     = "serve.webhooks.url"
	KeyWebhookSecret  = "serve.webhooks.secret_file"
	KeyWebhookResults = "serve.webhooks.events"
	// EnvWebhookSecret holds the webhook secret when no file is set.
	EnvWebhookSecret = "RELAYCTL_WEBHOOK_SECRET"

	KeyThrottle = "serve.throttle" // default, domains, pause, pause_max
	KeyStreams  = "serve.streams"  // list, users, sender_domains, default
)

type limitsEntry struct {
	MaxConnections int `mapstructure:"max_connections"`
	PerMinute      int `mapstructure:"per_minute"`
	PerConnection  int `mapstructure:"per_connection"`
}

type throttleEntry struct {
	Default  limitsEntry            `mapstructure:"default"`
	Domains  map[string]limitsEntry `mapstructure:"domains"`
	Pause    time.Duration          `mapstructure:"pause"`
	PauseMax time.Duration          `mapstructure:"pause_max"`
}

type streamsEntry struct {
	List []struct {
		Name     string `mapstructure:"name"`
		Priority int    `mapstructure:"priority"`
		SourceIP string `mapstructure:"source_ip"`
		Hello    string `mapstructure:"hello"`
		// MaxInflight caps the stream's deliveries in flight (0: none).
		MaxInflight int `mapstructure:"max_inflight"`
	} `mapstructure:"list"`
	Users         map[string]string `mapstructure:"users"`
	SenderDomains map[string]string `mapstructure:"sender_domains"`
	Default       string            `mapstructure:"default"`
}

func (l limitsEntry) limits() (throttle.Limits, error) {
	if l.MaxConnections < 0 || l.PerMinute < 0 || l.PerConnection < 0 {
		return throttle.Limits{}, errors.New("limits must not be negative")
	}
	return throttle.Limits{MaxConnections: l.MaxConnections, PerMinute: l.PerMinute, PerConnection: l.PerConnection}, nil
}

// Ops is what Setup built; tests look inside.
type Ops struct {
	Suppress *suppress.Store
	Metrics  *metrics.Metrics
	Webhook  *webhook.Sender // nil when not configured
	Throttle *throttle.Throttle
	Streams  *stream.Policy
	Socket   string
	// MetricsAddr is the bound metrics listener ("" none); set once the
	// relay runs.
	MetricsAddr atomic.Value

	queue  atomic.Pointer[queue.Queue]
	engine atomic.Pointer[delivery.Engine]
	log    *slog.Logger

	statsMu     sync.Mutex
	statsAt     time.Time
	statsN      int
	statsOldest time.Time
}

// Setup reads the configuration and adds the hooks to cfg (after any
// already there). Configuration errors are usage errors (exit 2).
func Setup(f *cmdutil.Factory, cfg *relay.Config, log *slog.Logger) (*Ops, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	spool := cfg.Spool
	if spool == "" {
		var err error
		if spool, err = relay.DefaultSpool(); err != nil {
			return nil, &cmdutil.IncompleteError{Err: err}
		}
		cfg.Spool = spool
	}
	o := &Ops{log: log}

	// Suppression list.
	policy, err := suppresscmd.Policy(f)
	if err != nil {
		return nil, err
	}
	file := f.Config.GetString(suppresscmd.KeyFile)
	if file == "" {
		file = suppress.DefaultFile(spool)
	}
	if o.Suppress, err = suppress.Open(file, policy, f.Now); err != nil {
		return nil, &cmdutil.UsageError{Err: fmt.Errorf("serve.suppression: %w", err)}
	}

	// Metrics.
	o.Metrics = metrics.New(metrics.Options{Queue: o.queueStats, Now: f.Now})

	// Webhooks.
	if u := f.Config.GetString(KeyWebhookURL); u != "" {
		secret := []byte(os.Getenv(EnvWebhookSecret))
		if p := f.Config.GetString(KeyWebhookSecret); p != "" {
			b, err := os.ReadFile(p)
			if err != nil {
				return nil, cmdutil.Usagef("%s: %v", KeyWebhookSecret, err)
			}
			secret = bytes.TrimRight(b, "\r\n")
		}
		var results []events.Result
		for _, r := range f.Config.GetStringSlice(KeyWebhookResults) {
			switch res := events.Result(strings.ToLower(r)); res {
			case events.Delivered, events.Deferred, events.Bounced, events.Expired, events.Suppressed:
				results = append(results, res)
			default:
				return nil, cmdutil.Usagef("%s: %q is not delivered, deferred, bounced, expired or suppressed", KeyWebhookResults, r)
			}
		}
		if o.Webhook, err = webhook.New(webhook.Config{URL: u, Secret: secret, Results: results, Log: log}); err != nil {
			return nil, cmdutil.Usagef("serve.webhooks: %v (secret: %s or $%s)", err, KeyWebhookSecret, EnvWebhookSecret)
		}
	}

	// Throttles: always on (a 421 pauses its domain); limits from config.
	var te throttleEntry
	if err := f.Config.UnmarshalKey(KeyThrottle, &te); err != nil {
		return nil, cmdutil.Usagef("%s: %v", KeyThrottle, err)
	}
	tc := throttle.Config{Domains: map[string]throttle.Limits{}, PauseInitial: te.Pause, PauseMax: te.PauseMax, Now: f.Now}
	if tc.Default, err = te.Default.limits(); err != nil {
		return nil, cmdutil.Usagef("%s.default: %v", KeyThrottle, err)
	}
	for d, l := range te.Domains {
		if tc.Domains[d], err = l.limits(); err != nil {
			return nil, cmdutil.Usagef("%s.domains.%s: %v", KeyThrottle, d, err)
		}
	}
	if te.Pause < 0 || te.PauseMax < 0 {
		return nil, cmdutil.Usagef("%s: pause durations must not be negative", KeyThrottle)
	}
	o.Throttle = throttle.New(tc)
	cfg.Delivery.Throttle = o.Throttle
	th := o.Throttle
	o.Metrics.Registry().MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "relayctl_destinations_paused", Help: "Destination domains paused after a 421 or 4.7.x throttling reply.",
	}, func() float64 {
		n := 0
		for _, d := range th.Snapshot() {
			if !d.PausedUntil.IsZero() {
				n++
			}
		}
		return float64(n)
	}))

	// Streams.
	var se streamsEntry
	if err := f.Config.UnmarshalKey(KeyStreams, &se); err != nil {
		return nil, cmdutil.Usagef("%s: %v", KeyStreams, err)
	}
	sc := stream.Config{Users: se.Users, SenderDomains: se.SenderDomains, Default: se.Default}
	for _, st := range se.List {
		sc.Streams = append(sc.Streams, stream.Stream{Name: st.Name, Priority: st.Priority, SourceIP: st.SourceIP, Hello: st.Hello, MaxInflight: st.MaxInflight})
	}
	if o.Streams, err = stream.New(sc); err != nil {
		return nil, cmdutil.Usagef("%s: %v", KeyStreams, err)
	}
	cfg.Delivery.Identity = o.Streams.Identity
	cfg.Delivery.StreamMaxInflight = o.Streams.MaxInflight
	o.Metrics.Registry().MustRegister(newInflightCollector(o))

	o.Socket = f.Config.GetString(KeyAdminSocket)
	if o.Socket == "" {
		o.Socket = filepath.Join(spool, "admin.sock")
	}
	metricsListen := f.Config.GetString(KeyMetricsListen)
	if metricsListen != "" {
		host, _, err := net.SplitHostPort(metricsListen)
		if err != nil {
			return nil, cmdutil.Usagef("%s: %v", KeyMetricsListen, err)
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			log.Warn("metrics listener is not on loopback: anyone who can reach it sees queue and delivery figures", "listen", metricsListen)
		}
	}

	h := &cfg.Hooks
	suppressed := func(rcpt string) (suppress.Entry, bool) {
		e, ok, err := o.Suppress.Check(rcpt)
		if err != nil {
			log.Error("suppression list unreadable: accepting", "rcpt", rcpt, "err", err)
			return e, false
		}
		return e, ok
	}
	if policy.Action == suppress.ActionDrop {
		prevDrop := h.RcptDrop
		h.RcptDrop = func(ctx context.Context, from, rcpt string) (string, bool) {
			if prevDrop != nil {
				if reason, drop := prevDrop(ctx, from, rcpt); drop {
					return reason, true
				}
			}
			e, ok := suppressed(rcpt)
			if !ok {
				return "", false
			}
			_, _, text := suppress.Reply(e)
			return text, true
		}
	} else {
		prevRcpt := h.RcptCheck
		h.RcptCheck = func(ctx context.Context, from, rcpt string) *smtp.SMTPError {
			if prevRcpt != nil {
				if e := prevRcpt(ctx, from, rcpt); e != nil {
					return e
				}
			}
			e, ok := suppressed(rcpt)
			if !ok {
				return nil
			}
			code, enh, text := suppress.Reply(e)
			return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode(enh), Message: text}
		}
	}
	prevResult := h.OnResult
	h.OnResult = func(env *queue.Envelope, rc queue.Recipient, res delivery.Result) {
		if prevResult != nil {
			prevResult(env, rc, res)
		}
		outcome := res.Outcome
		if rc.State == queue.StateBounced && outcome == events.Deferred {
			outcome = events.Expired
		}
		entry, err := o.Suppress.Observe(rc.Address, outcome, res.Code, res.Enhanced, res.Response)
		if err != nil {
			log.Error("suppression list: recording a bounce failed", "rcpt", rc.Address, "err", err)
			return
		}
		if entry != nil {
			o.Metrics.Suppressed(string(entry.Source))
			log.Info("recipient suppressed", "rcpt", entry.Address, "source", entry.Source, "reason", entry.Reason)
		}
	}
	streams := o.Streams
	prevClassify := h.Classify
	h.Classify = func(env *queue.Envelope, header mail.Header) {
		if prevClassify != nil {
			prevClassify(env, header)
		}
		if env.Stream == "" {
			env.Stream = streams.Classify(header, env.AuthUser, env.From)
		}
	}
	if h.Priority == nil {
		h.Priority = func(env *queue.Envelope) int { return streams.Priority(env.Stream) }
	}
	prevQueued := h.Queued
	h.Queued = func(env *queue.Envelope) {
		if prevQueued != nil {
			prevQueued(env)
		}
		o.Metrics.Accepted(len(env.Recipients))
	}
	h.Events = append(h.Events, o.Metrics.Delivery)
	if o.Webhook != nil {
		wh := o.Webhook
		h.Events = append(h.Events, func(e events.Event) {
			// Not for refusals at RCPT (the app got the 550 already) nor
			// for our own DSNs (from <>): only the app's messages.
			if e.QueueID != "" && e.Sender != "" {
				wh.Send(e)
			}
		})
		h.Services = append(h.Services, func(ctx context.Context, _ *relay.Relay) error { return wh.Run(ctx) })
	}
	h.Services = append(h.Services, o.adminService)
	if metricsListen != "" {
		h.Services = append(h.Services, func(ctx context.Context, r *relay.Relay) error {
			return o.metricsService(ctx, metricsListen)
		})
	}
	return o, nil
}

// queueStats reports the queue size and oldest arrival, recomputed at
// most every 10 s (it reads every envelope).
func (o *Ops) queueStats() (int, time.Time, error) {
	q := o.queue.Load()
	if q == nil {
		return 0, time.Time{}, nil
	}
	o.statsMu.Lock()
	defer o.statsMu.Unlock()
	if time.Since(o.statsAt) < 10*time.Second {
		return o.statsN, o.statsOldest, nil
	}
	envs, err := q.List()
	if err != nil {
		return 0, time.Time{}, err
	}
	o.statsN, o.statsOldest, o.statsAt = len(envs), time.Time{}, time.Now()
	if len(envs) > 0 {
		o.statsOldest = envs[0].Received
	}
	return o.statsN, o.statsOldest, nil
}

// inflightCollector is the relayctl_stream_deliveries_in_flight gauge:
// each configured stream's messages being delivered now, to compare with
// its max_inflight.
type inflightCollector struct {
	o    *Ops
	desc *prometheus.Desc
}

func newInflightCollector(o *Ops) *inflightCollector {
	return &inflightCollector{o: o, desc: prometheus.NewDesc("relayctl_stream_deliveries_in_flight",
		"Messages being delivered now, by stream (compare with the stream's max_inflight).", []string{"stream"}, nil)}
}

func (c *inflightCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *inflightCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[string]int{}
	if e := c.o.engine.Load(); e != nil {
		counts = e.InFlight()
	}
	for _, st := range c.o.Streams.Streams() {
		name := strings.ToLower(strings.TrimSpace(st.Name))
		if _, ok := counts[name]; !ok {
			counts[name] = 0
		}
	}
	for name, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), name)
	}
}

func (o *Ops) adminService(ctx context.Context, r *relay.Relay) error {
	o.queue.Store(r.Queue)
	o.engine.Store(r.Engine)
	l, err := admin.Listen(o.Socket)
	if err != nil {
		return err
	}
	defer os.Remove(o.Socket)
	srv := &admin.Server{
		Queue:       r.Queue,
		RetryNow:    r.Engine.RetryNow,
		Bounce:      func(env *queue.Envelope, reason string) error { return bounce(r, env, reason) },
		DeliveryLog: r.Config().DeliveryLog,
		Metrics:     o.Metrics.Handler(),
		Throttles:   func() any { return o.Throttle.Snapshot() },
		Log:         o.log,
	}
	o.log.Info("admin socket listening", "path", o.Socket)
	return srv.Serve(ctx, l)
}

func (o *Ops) metricsService(ctx context.Context, addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	o.MetricsAddr.Store(l.Addr().String())
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", o.Metrics.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	o.log.Info("metrics listening", "addr", l.Addr().String())
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

// bounce queues a failure DSN (RFC 3464) to env's sender for its pending
// recipients, as `queue delete --bounce` asks; never for a DSN itself or
// a message from the null sender (RFC 3461 §6.2).
func bounce(r *relay.Relay, env *queue.Envelope, reason string) error {
	if env.IsDSN || env.From == "" {
		return nil
	}
	now := time.Now()
	var rcpts []dsn.Recipient
	for _, rc := range env.Recipients {
		if rc.State.Done() {
			continue
		}
		d := dsn.Recipient{Address: rc.Address, ORcpt: rc.ORcpt, Action: dsn.Failed, Status: "5.0.0",
			Reason: reason, RemoteMTA: rc.RemoteHost, LastAttempt: rc.LastAttempt}
		if rc.LastResponse != "" {
			d.Reason = reason + " (last attempt: " + rc.LastResponse + ")"
		}
		rcpts = append(rcpts, d)
	}
	if len(rcpts) == 0 {
		return nil
	}
	var orig *bytes.Reader
	if rc, err := r.Queue.Content(env.ID); err == nil {
		var b bytes.Buffer
		b.ReadFrom(rc)
		rc.Close()
		orig = bytes.NewReader(b.Bytes())
	}
	rep := dsn.Report{ReportingMTA: r.Config().Hostname, To: env.From, QueueID: env.ID, EnvID: env.EnvID,
		Arrival: env.Received, Date: now, ReturnFull: env.Ret == queue.RetFull, Recipients: rcpts}
	var msg []byte
	var err error
	if orig != nil {
		msg, err = dsn.Build(rep, orig)
	} else {
		msg, err = dsn.Build(rep, nil)
	}
	if err != nil {
		return fmt.Errorf("build DSN: %w", err)
	}
	n := &queue.Envelope{From: "", IsDSN: true, Stream: env.Stream, Received: now,
		Recipients: []queue.Recipient{{Address: env.From, Notify: []string{"NEVER"}, State: queue.StateQueued}}}
	if _, err := r.Queue.Enqueue(n, bytes.NewReader(msg)); err != nil {
		return fmt.Errorf("queue DSN: %w", err)
	}
	return nil
}
