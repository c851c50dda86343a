// Package delivery sends queued mail to the recipients' mail exchangers:
// RFC 5321 §5 MX selection (preference order, random among equals,
// implicit MX, RFC 7505 null MX), opportunistic STARTTLS (RFC 3207,
// RFC 7435), per-recipient results with RFC 3463 enhanced codes, retries
// with exponential backoff until a give-up time (RFC 5321 §4.5.4.1), and
// delivery status notifications (RFC 3461, RFC 3464, built by pkg/dsn)
// for bounces, expiry and long delays.
package delivery

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/relayctl/relayctl/pkg/dnsclient"
	"github.com/relayctl/relayctl/pkg/dsn"
	"github.com/relayctl/relayctl/pkg/events"
	"github.com/relayctl/relayctl/pkg/queue"
)

// Config configures delivery. Zero values take the documented defaults.
type Config struct {
	Hostname string             // EHLO name; "" → os.Hostname()
	Resolver dnsclient.Resolver // for MX, A and AAAA lookups
	Port     int                // port on MX hosts; 0 → 25 (tests use a loopback port)
	// Routes maps a recipient domain (or "*") to a fixed "host:port"
	// (smarthost, test lab); MX lookup is skipped for it.
	Routes map[string]string
	// RouteSettings are routes with their own TLS and AUTH settings,
	// keyed like Routes; an entry here wins over Routes.
	RouteSettings map[string]Route

	RootCAs            *x509.CertPool
	InsecureSkipVerify bool
	// RequireTLS refuses to deliver without STARTTLS, and verifies the
	// certificate (against RootCAs) unless InsecureSkipVerify.
	RequireTLS bool

	Backoff Backoff // zero fields → DefaultBackoff()
	// DelayNotify sends one "delayed" DSN when a recipient has been
	// deferred this long (0 → 4h; negative: never).
	DelayNotify time.Duration

	Concurrency int // parallel deliveries, 0 → 20
	PerDomain   int // parallel deliveries to one recipient domain, 0 → 5

	// Throttle, when set, limits deliveries per destination domain and
	// pauses a whole domain that answers 421 or 4.7.x (pkg/throttle).
	Throttle Throttle
	// Identity, when set, gives the local IP address and EHLO name to
	// send a stream's messages from ("" for the defaults), so streams
	// keep separate reputations (pkg/stream).
	Identity func(stream string) (sourceIP, hello string)
	// StreamMaxInflight, when set, caps the messages of a stream being
	// delivered at once (0: no cap beyond Concurrency), so one stream (a
	// bulk backlog) never holds every slot. The stream is the envelope's
	// Stream as stored.
	StreamMaxInflight func(stream string) int

	Events   func(events.Event)                                          // every attempt of every recipient (nil ok)
	OnResult func(env *queue.Envelope, rcpt queue.Recipient, res Result) // after each recipient attempt
	Now      func() time.Time
	Log      *slog.Logger // nil: discard

	DialTimeout    time.Duration // 0 → 30s
	CommandTimeout time.Duration // 0 → 5m (RFC 5321 §4.5.3.2)
	DataTimeout    time.Duration // reply after the final dot; 0 → 10m
	IdleTimeout    time.Duration // reuse window of an idle connection; 0 → 10s
}

// Throttle keeps deliveries under per-destination limits.
type Throttle interface {
	// Reserve asks to deliver one message to domain now; when !ok its
	// recipients there are postponed to retryAt without an attempt.
	// release is called when the delivery is over.
	Reserve(domain string) (release func(), retryAt time.Time, ok bool)
	// Observe is told each recipient's reply from domain.
	Observe(domain string, code int, enhanced, response string) (pausedUntil time.Time, paused bool)
	// PerConnection is how many messages one connection to domain may
	// carry (0: no limit).
	PerConnection(domain string) int
}

// Result is the outcome of one attempt for one recipient.
type Result struct {
	Recipient string
	Outcome   events.Result
	Code      int    // SMTP reply code, 0 when there was none
	Enhanced  string // RFC 3463 code
	Response  string // the reply or the error
	Host, IP  string
	TLS       bool
}

func (c Config) withDefaults() Config {
	if c.Hostname == "" {
		c.Hostname, _ = os.Hostname()
		if c.Hostname == "" {
			c.Hostname = "localhost"
		}
	}
	c.Backoff = c.Backoff.withDefaults()
	if c.DelayNotify == 0 {
		c.DelayNotify = 4 * time.Hour
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 20
	}
	if c.PerDomain <= 0 {
		c.PerDomain = 5
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 30 * time.Second
	}
	if c.CommandTimeout <= 0 {
		c.CommandTimeout = 5 * time.Minute
	}
	if c.DataTimeout <= 0 {
		c.DataTimeout = 10 * time.Minute
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 10 * time.Second
	}
	return c
}

// Engine delivers the messages of a queue.
type Engine struct {
	cfg Config
	q   *queue.Queue
	d   *deliverer

	mu       sync.Mutex
	inflight map[string]bool
	streams  map[string]int // messages in flight per stream
	// unsaved holds recipient states an Update could not write (disk
	// full): they are written before the message is tried again, so a
	// delivered recipient is not delivered again.
	unsaved   map[string]map[int]queue.Recipient
	notBefore map[string]time.Time
	domains   map[string]int
	kick      chan struct{}
}

// New returns an engine for q.
func New(cfg Config, q *queue.Queue) (*Engine, error) {
	if q == nil {
		return nil, errors.New("delivery: no queue")
	}
	cfg = cfg.withDefaults()
	for dom, r := range cfg.RouteSettings {
		switch r.TLS {
		case "", TLSOpportunistic, TLSRequire, TLSImplicit, TLSNone:
		default:
			return nil, fmt.Errorf("delivery: route %s: tls %q is not one of opportunistic, require, implicit, none", dom, r.TLS)
		}
		if r.Addr == "" {
			return nil, fmt.Errorf("delivery: route %s: no host:port", dom)
		}
	}
	if cfg.Resolver == nil && cfg.Routes["*"] == "" && cfg.RouteSettings["*"].Addr == "" {
		return nil, errors.New("delivery: a DNS resolver is needed (or a \"*\" route)")
	}
	e := &Engine{cfg: cfg, q: q, inflight: map[string]bool{}, streams: map[string]int{}, unsaved: map[string]map[int]queue.Recipient{}, notBefore: map[string]time.Time{}, domains: map[string]int{}, kick: make(chan struct{}, 1)}
	e.d = &deliverer{cfg: cfg}
	return e, nil
}

// Run delivers due messages until ctx is done, then stops: deliveries in
// progress are abandoned (connections closed) and their messages stay
// queued as they were. It returns nil.
func (e *Engine) Run(ctx context.Context) error {
	e.d.pool = newPool(e.cfg.IdleTimeout, e.cfg.PerDomain)
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		e.d.pool.expire(true)
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	janitor := time.NewTicker(time.Second)
	defer janitor.Stop()
	for {
		now := e.cfg.Now()
		waitKick := false
		for again := true; again; {
			again = false
			e.mu.Lock()
			want := e.cfg.Concurrency + len(e.inflight) // enough to fill every free slot
			capped := e.cappedStreams()
			e.mu.Unlock()
			if len(capped) > 0 {
				waitKick = true // their due messages wait for a completion
			}
			for _, due := range e.q.DueStreams(now, want, capped) {
				id, stream := due.ID, due.Stream
				e.mu.Lock()
				busy := e.inflight[id] || time.Now().Before(e.notBefore[id])
				full := len(e.inflight) >= e.cfg.Concurrency
				atCap := e.streamAtCap(stream)
				if !busy && !full && !atCap {
					e.inflight[id] = true
					e.streams[stream]++
				}
				e.mu.Unlock()
				if busy {
					waitKick = true
					continue
				}
				if full {
					waitKick = true
					break
				}
				if atCap {
					// The stream reached its cap in this round: look again
					// without it, so other streams get the free slots now.
					waitKick, again = true, true
					continue
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					e.process(ctx, id)
					e.mu.Lock()
					delete(e.inflight, id)
					if e.streams[stream]--; e.streams[stream] <= 0 {
						delete(e.streams, stream)
					}
					e.mu.Unlock()
					e.wake()
				}()
			}
		}
		wait := time.Hour
		if next, ok := e.q.NextDue(); ok {
			wait = min(wait, next.Sub(e.cfg.Now()))
		}
		if waitKick {
			// Something due is in flight or waits for a free slot: a
			// completion kicks us; look again within a second regardless.
			if wait <= 0 {
				wait = time.Second // the earliest is in flight
			}
			wait = min(wait, time.Second)
		} else if wait <= 0 {
			continue
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-e.q.Wake():
		case <-e.kick:
		case <-timer.C:
		case <-janitor.C:
			e.d.pool.expire(false)
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// InFlight returns how many messages of each stream are being delivered
// now (streams with none are absent).
func (e *Engine) InFlight() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]int, len(e.streams))
	for s, n := range e.streams {
		out[s] = n
	}
	return out
}

// streamAtCap reports whether stream has its StreamMaxInflight messages
// in flight. e.mu held.
func (e *Engine) streamAtCap(stream string) bool {
	if e.cfg.StreamMaxInflight == nil {
		return false
	}
	limit := e.cfg.StreamMaxInflight(stream)
	return limit > 0 && e.streams[stream] >= limit
}

// cappedStreams are the streams at their cap. e.mu held.
func (e *Engine) cappedStreams() map[string]bool {
	var out map[string]bool
	for s := range e.streams {
		if e.streamAtCap(s) {
			if out == nil {
				out = map[string]bool{}
			}
			out[s] = true
		}
	}
	return out
}

// RetryNow makes the deferred recipients of the given messages (all
// messages when none given) due at once.
func (e *Engine) RetryNow(ids ...string) {
	if len(ids) == 0 {
		envs, err := e.q.List()
		if err != nil {
			e.cfg.Log.Error("retry: list queue", "err", err)
			return
		}
		for _, env := range envs {
			ids = append(ids, env.ID)
		}
	}
	for _, id := range ids {
		err := e.q.Update(id, func(env *queue.Envelope) error {
			for i := range env.Recipients {
				if env.Recipients[i].State == queue.StateDeferred {
					env.Recipients[i].NextAttempt = time.Time{}
				}
			}
			return nil
		})
		if err != nil && !errors.Is(err, queue.ErrNotFound) {
			e.cfg.Log.Error("retry", "id", id, "err", err)
		}
	}
	e.wake()
}

// wake makes Run look at the queue again soon (a pending wake is enough).
func (e *Engine) wake() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

func (e *Engine) acquireDomain(ctx context.Context, domain string) bool {
	for {
		e.mu.Lock()
		if e.domains[domain] < e.cfg.PerDomain {
			e.domains[domain]++
			e.mu.Unlock()
			return true
		}
		e.mu.Unlock()
		select {
		case <-ctx.Done():
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (e *Engine) releaseDomain(domain string) {
	e.mu.Lock()
	e.domains[domain]--
	if e.domains[domain] <= 0 {
		delete(e.domains, domain)
	}
	e.mu.Unlock()
}

// process makes one attempt for every due recipient of message id.
func (e *Engine) process(ctx context.Context, id string) {
	if !e.saveUnsaved(id) {
		return
	}
	env, err := e.q.Get(id)
	if err != nil {
		if !errors.Is(err, queue.ErrNotFound) {
			e.cfg.Log.Error("delivery: read envelope", "id", id, "err", err)
		}
		return
	}
	now := e.cfg.Now()
	byDomain := map[string][]int{}
	var order []string
	for i, r := range env.Recipients {
		if (r.State != queue.StateQueued && r.State != queue.StateDeferred) || r.NextAttempt.After(now) {
			continue
		}
		dom := domainOf(r.Address)
		if _, ok := byDomain[dom]; !ok {
			order = append(order, dom)
		}
		byDomain[dom] = append(byDomain[dom], i)
	}
	results := map[int]outcome{}
	postponed := map[int]time.Time{}
	for _, dom := range order {
		idx := byDomain[dom]
		j := job{from: env.From, size: env.Size, ret: env.Ret, envID: env.EnvID, smtputf8: env.SMTPUTF8,
			open: func() (io.ReadCloser, error) { return e.q.Content(id) }}
		for _, i := range idx {
			j.rcpts = append(j.rcpts, env.Recipients[i])
		}
		if e.cfg.Identity != nil {
			j.source, j.hello = e.cfg.Identity(env.Stream)
		}
		var release func()
		if th := e.cfg.Throttle; th != nil {
			j.perConn = th.PerConnection(dom)
			rel, at, ok := th.Reserve(dom)
			if !ok {
				for _, i := range idx {
					postponed[i] = at
				}
				continue
			}
			release = rel
		}
		if !e.acquireDomain(ctx, dom) {
			if release != nil {
				release()
			}
			break
		}
		res := e.d.deliverDomain(ctx, dom, j)
		e.releaseDomain(dom)
		if release != nil {
			release()
			for _, o := range res {
				if o.Code != 0 {
					e.cfg.Throttle.Observe(dom, o.Code, o.Enhanced, o.Response)
				}
			}
		}
		interrupted := ctx.Err() != nil
		for k, i := range idx {
			// On shutdown keep only what a server actually answered.
			if interrupted && (res[k].Code == 0 || res[k].Outcome == events.Deferred) {
				continue
			}
			results[i] = res[k]
		}
		if interrupted {
			break
		}
	}
	if len(results) > 0 {
		e.record(env, results, e.cfg.Now()) // the schedule counts from the end of the attempt
	}
	if len(postponed) > 0 {
		e.postpone(id, env, postponed)
	}
}

// postpone moves recipients the throttle held back to a later time,
// without counting an attempt.
func (e *Engine) postpone(id string, env *queue.Envelope, at map[int]time.Time) {
	err := e.q.Update(id, func(cur *queue.Envelope) error {
		for i, t := range at {
			if i < len(cur.Recipients) && cur.Recipients[i].Address == env.Recipients[i].Address {
				if r := &cur.Recipients[i]; r.State == queue.StateQueued || r.State == queue.StateDeferred {
					r.NextAttempt = t
				}
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, queue.ErrNotFound) {
		e.cfg.Log.Error("delivery: postpone", "id", id, "err", err)
	}
}

// saveUnsaved writes recipient states a previous Update could not; false
// when it still cannot (the message is then left alone for a while).
func (e *Engine) saveUnsaved(id string) bool {
	e.mu.Lock()
	st, ok := e.unsaved[id]
	e.mu.Unlock()
	if !ok {
		return true
	}
	err := e.q.Update(id, func(cur *queue.Envelope) error {
		for i, r := range st {
			if i < len(cur.Recipients) && cur.Recipients[i].Address == r.Address {
				cur.Recipients[i] = r
			}
		}
		return nil
	})
	e.mu.Lock()
	defer e.mu.Unlock()
	if err != nil && !errors.Is(err, queue.ErrNotFound) {
		e.notBefore[id] = time.Now().Add(30 * time.Second)
		e.cfg.Log.Error("delivery: still cannot record results", "id", id, "err", err)
		return false
	}
	delete(e.unsaved, id)
	delete(e.notBefore, id)
	return err == nil
}

// record applies attempt results to the envelope: notifications first
// (so a crash can at worst repeat one, never lose one), then the durable
// state update.
func (e *Engine) record(env *queue.Envelope, results map[int]outcome, now time.Time) {
	next := *env
	next.Recipients = slices.Clone(env.Recipients)
	var failed, delayed, relayed []dsn.Recipient
	var failedIdx, delayedIdx []int
	var evs []events.Event
	type hook struct {
		r   queue.Recipient
		res Result
	}
	var hooks []hook
	expiry := env.Received.Add(e.cfg.Backoff.Lifetime)
	for i, o := range results {
		r := &next.Recipients[i]
		r.Attempts++
		r.LastAttempt = now
		r.LastResponse = o.Response
		r.RemoteHost = o.Host
		switch o.Outcome {
		case events.Delivered:
			r.State, r.DoneAt = queue.StateDelivered, now
			if notifies(r, "SUCCESS") && !o.remoteDSN {
				// RFC 3461 §6.2.2: the next hop does not do DSN; we report "relayed".
				relayed = append(relayed, dsnRcpt(r, dsn.Relayed, o.Result, now))
			}
		case events.Bounced:
			r.State, r.DoneAt = queue.StateBounced, now
			if notifies(r, "FAILURE") {
				failed = append(failed, dsnRcpt(r, dsn.Failed, o.Result, now))
				failedIdx = append(failedIdx, i)
			}
		default:
			if !now.Before(expiry) {
				o.Outcome = events.Expired
				if o.Enhanced == "" || !strings.HasPrefix(o.Enhanced, "4.") {
					o.Enhanced = "4.4.7" // RFC 3463: delivery time expired
				}
				o.Response = "gave up after " + e.cfg.Backoff.Lifetime.String() + ": " + o.Response
				r.State, r.DoneAt, r.LastResponse = queue.StateBounced, now, o.Response
				if notifies(r, "FAILURE") {
					failed = append(failed, dsnRcpt(r, dsn.Failed, o.Result, now))
					failedIdx = append(failedIdx, i)
				}
				break
			}
			r.State = queue.StateDeferred
			r.NextAttempt = now.Add(e.cfg.Backoff.Delay(r.Attempts))
			if r.NextAttempt.After(expiry) {
				r.NextAttempt = expiry // the last try is at the give-up time
			}
			if e.cfg.DelayNotify > 0 && !r.DelayNotified && now.Sub(env.Received) >= e.cfg.DelayNotify {
				r.DelayNotified = true
				if notifies(r, "DELAY") {
					d := dsnRcpt(r, dsn.Delayed, o.Result, now)
					d.WillRetryUntil = expiry
					delayed = append(delayed, d)
					delayedIdx = append(delayedIdx, i)
				}
			}
		}
		results[i] = o
		evs = append(evs, events.Event{
			Time: now, QueueID: env.ID, MessageID: env.MessageID, Sender: env.From, Recipient: r.Address,
			Domain: domainOf(r.Address), Stream: env.Stream, RemoteHost: o.Host, RemoteIP: o.IP, TLS: o.TLS,
			Code: o.Code, EnhancedCode: o.Enhanced, Response: o.Response, Result: o.Outcome,
			Attempt: r.Attempts, Queued: env.Received,
		})
		hooks = append(hooks, hook{*r, o.Result})
	}
	if !env.IsDSN && env.From != "" {
		if len(failed) > 0 && e.notify(env, failed, env.Ret == queue.RetFull, now) != nil {
			// The bounce could not be queued (disk full): keep these
			// recipients, so the next attempt bounces (and notifies) again
			// rather than the sender never hearing of it.
			for _, i := range failedIdx {
				r := &next.Recipients[i]
				r.State, r.DoneAt = queue.StateDeferred, time.Time{}
				r.NextAttempt = now.Add(e.cfg.Backoff.Initial)
			}
		}
		if len(delayed) > 0 && e.notify(env, delayed, false, now) != nil {
			for _, i := range delayedIdx {
				next.Recipients[i].DelayNotified = false
			}
		}
		if len(relayed) > 0 {
			e.notify(env, relayed, false, now) // logged; the mail itself is delivered
		}
	}
	err := e.q.Update(env.ID, func(cur *queue.Envelope) error {
		for i := range results {
			if i < len(cur.Recipients) && cur.Recipients[i].Address == next.Recipients[i].Address {
				cur.Recipients[i] = next.Recipients[i]
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, queue.ErrNotFound) {
		e.cfg.Log.Error("delivery: record result", "id", env.ID, "err", err)
		st := map[int]queue.Recipient{}
		for i := range results {
			st[i] = next.Recipients[i]
		}
		e.mu.Lock()
		e.unsaved[env.ID] = st
		e.notBefore[env.ID] = time.Now().Add(30 * time.Second)
		e.mu.Unlock()
	}
	for _, ev := range evs {
		if e.cfg.Events != nil {
			e.cfg.Events(ev)
		}
		e.cfg.Log.Info("delivery", "id", ev.QueueID, "rcpt", ev.Recipient, "result", ev.Result,
			"host", ev.RemoteHost, "ip", ev.RemoteIP, "tls", ev.TLS, "response", ev.Response)
	}
	if e.cfg.OnResult != nil {
		for _, h := range hooks {
			e.cfg.OnResult(&next, h.r, h.res)
		}
	}
}

// notifies reports whether r's NOTIFY asks for kind (RFC 3461 §4.1; the
// default is FAILURE and DELAY).
func notifies(r *queue.Recipient, kind string) bool {
	if len(r.Notify) == 0 {
		return kind != "SUCCESS"
	}
	for _, n := range r.Notify {
		if strings.EqualFold(n, "NEVER") {
			return false
		}
		if strings.EqualFold(n, kind) {
			return true
		}
	}
	return false
}

func dsnRcpt(r *queue.Recipient, a dsn.Action, res Result, now time.Time) dsn.Recipient {
	d := dsn.Recipient{Address: r.Address, ORcpt: r.ORcpt, Action: a, Status: res.Enhanced,
		RemoteMTA: res.Host, LastAttempt: now}
	if res.Code != 0 {
		d.Diagnostic = res.Response
	} else {
		d.Reason = res.Response
	}
	if d.Status == "" && res.Code >= 200 {
		d.Status = fmt.Sprintf("%d.0.0", res.Code/100)
	}
	return d
}

// notify queues a DSN to the sender of env from the null reverse-path.
func (e *Engine) notify(env *queue.Envelope, rcpts []dsn.Recipient, full bool, now time.Time) error {
	var orig io.Reader
	if rc, err := e.q.Content(env.ID); err == nil {
		defer rc.Close()
		orig = rc
	}
	msg, err := dsn.Build(dsn.Report{ReportingMTA: e.cfg.Hostname, To: env.From, QueueID: env.ID,
		EnvID: env.EnvID, Arrival: env.Received, Date: now, ReturnFull: full, Recipients: rcpts}, orig)
	if err != nil {
		e.cfg.Log.Error("delivery: build DSN", "id", env.ID, "err", err)
		return err
	}
	n := &queue.Envelope{From: "", IsDSN: true, Stream: env.Stream,
		Recipients: []queue.Recipient{{Address: env.From, Notify: []string{"NEVER"}}}}
	id, err := e.q.Enqueue(n, bytes.NewReader(msg))
	if err != nil {
		e.cfg.Log.Error("delivery: queue DSN", "id", env.ID, "err", err)
		return err
	}
	e.cfg.Log.Info("delivery: DSN queued", "id", env.ID, "dsn", id, "action", rcpts[0].Action, "to", env.From)
	return nil
}

// DeliverNow makes one delivery attempt of msg, without a queue: the
// --direct mode of `relayctl send`. No retries and no DSNs; a deferred
// result means "try again later".
func DeliverNow(ctx context.Context, cfg Config, from string, rcpts []string, msg []byte) []Result {
	cfg = cfg.withDefaults()
	d := &deliverer{cfg: cfg}
	byDomain := map[string][]int{}
	var order []string
	for i, r := range rcpts {
		dom := domainOf(r)
		if _, ok := byDomain[dom]; !ok {
			order = append(order, dom)
		}
		byDomain[dom] = append(byDomain[dom], i)
	}
	out := make([]Result, len(rcpts))
	for _, dom := range order {
		j := job{from: from, size: int64(len(msg)),
			open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(msg)), nil }}
		for _, i := range byDomain[dom] {
			j.rcpts = append(j.rcpts, queue.Recipient{Address: rcpts[i]})
		}
		res := d.deliverDomain(ctx, dom, j)
		for k, i := range byDomain[dom] {
			out[i] = res[k].Result
		}
	}
	return out
}
