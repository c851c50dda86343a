package operate_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relayctl/relayctl/cmd/cmdtest"
	"github.com/relayctl/relayctl/cmd/cmdutil"
	"github.com/relayctl/relayctl/cmd/operate"
	"github.com/relayctl/relayctl/pkg/admin"
	"github.com/relayctl/relayctl/pkg/delivery"
	"github.com/relayctl/relayctl/pkg/dnsclient"
	"github.com/relayctl/relayctl/pkg/dnstest"
	"github.com/relayctl/relayctl/pkg/events"
	"github.com/relayctl/relayctl/pkg/queue"
	"github.com/relayctl/relayctl/pkg/relay"
	"github.com/relayctl/relayctl/pkg/smtpd"
	"github.com/relayctl/relayctl/pkg/smtptest"
	"github.com/relayctl/relayctl/pkg/submit"
	"github.com/relayctl/relayctl/pkg/suppress"
	"github.com/relayctl/relayctl/pkg/webhook"
)

// lab: a relay with the operator's tools, delivering through a test DNS
// server to a real receiver on loopback.
type lab struct {
	r      *relay.Relay
	ops    *operate.Ops
	addr   string
	mx     *smtptest.Server
	spool  string
	dlog   string
	cancel context.CancelFunc
	done   chan error
}

func startLab(t *testing.T, set map[string]any, mutate func(*relay.Config)) *lab {
	t.Helper()
	mx := smtptest.Start(t, smtptest.Options{})
	_, p, _ := net.SplitHostPort(mx.Addr)
	port, _ := strconv.Atoi(p)
	dns := dnstest.Start(t, "dest.test. IN MX 10 mx.dest.test.\nmx.dest.test. IN A 127.0.0.1\nother.test. IN MX 10 mx.dest.test.\n")
	res, err := dnsclient.New([]string{dns.Addr()}, dnsclient.WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "op") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	nets, _ := relay.ParseNetworks([]string{"127.0.0.0/8"})
	backoff := delivery.DefaultBackoff()
	backoff.Initial, backoff.Max, backoff.Jitter = time.Hour, time.Hour, 0
	cfg := relay.Config{
		Hostname:    "relay.test",
		Spool:       filepath.Join(dir, "spool"),
		Listeners:   []smtpd.Listener{{Addr: "127.0.0.1:0", Mode: smtpd.ModePlain}},
		SMTP:        smtpd.Config{TrustedNetworks: nets},
		Delivery:    delivery.Config{Resolver: res, Port: port, Backoff: backoff, DialTimeout: 2 * time.Second, CommandTimeout: 5 * time.Second},
		DeliveryLog: filepath.Join(dir, "delivery.jsonl"),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	f, _, _, _ := cmdutil.NewTestFactory()
	for k, v := range set {
		f.Config.Set(k, v)
	}
	ops, err := operate.Setup(f, &cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := relay.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &lab{r: r, ops: ops, addr: r.Addrs()[0].String(), mx: mx, spool: cfg.Spool, dlog: cfg.DeliveryLog, cancel: cancel, done: make(chan error, 1)}
	go func() { l.done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-l.done:
			if err != nil {
				t.Errorf("relay: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("relay did not stop")
		}
	})
	// the CLI finds the socket through the spool
	t.Setenv("RELAYCTL_SERVE_SPOOL", cfg.Spool)
	waitFor(t, "admin socket", func() bool {
		_, err := admin.NewClient(ops.Socket).List(context.Background(), admin.Filter{})
		return err == nil
	})
	return l
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func (l *lab) submit(t *testing.T, rcpts ...string) *submit.Result {
	t.Helper()
	msg := "From: app@example.com\r\nTo: " + strings.Join(rcpts, ", ") + "\r\nSubject: test\r\n\r\nhello\r\n"
	res, err := submit.Send(context.Background(), submit.Options{Addr: l.addr, Hello: "app.test"}, "app@example.com", rcpts, []byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func (l *lab) metrics(t *testing.T) string {
	t.Helper()
	m, err := admin.NewClient(l.ops.Socket).Metrics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// A hard bounce suppresses the next message to that address, at RCPT.
func TestHardBounceSuppressesNextMessage(t *testing.T) {
	l := startLab(t, nil, nil)
	l.mx.SetHook(func(cmd, arg string) error {
		if cmd == "RCPT" && arg == "gone@dest.test" {
			return smtptest.Reply(550, [3]int{5, 1, 1}, "no such user")
		}
		return nil
	})
	if res := l.submit(t, "gone@dest.test", "ok@dest.test"); res.Refused() != 0 {
		t.Fatalf("first submission refused: %+v", res.Recipients)
	}
	l.mx.Wait(t, 1, 10*time.Second)
	waitFor(t, "suppression", func() bool { _, ok, _ := l.ops.Suppress.Check("gone@dest.test"); return ok })

	res := l.submit(t, "gone@dest.test", "ok@dest.test")
	r := res.Recipients[0].Reply
	if res.Recipients[0].Accepted || r.Code != 550 || r.Enhanced != "5.7.1" || !strings.Contains(r.Text, "<gone@dest.test> is on the suppression list (hard-bounce 550 5.1.1") {
		t.Fatalf("second RCPT: %+v", res.Recipients[0])
	}
	if !res.Recipients[1].Accepted {
		t.Error("other recipient refused")
	}
	l.mx.Wait(t, 2, 10*time.Second)

	// the CLI sees the entry, and removing it lets mail through again
	if out := cmdtest.Run(t, "suppress", "list"); !strings.Contains(out.Stdout, "gone@dest.test  hard-bounce") {
		t.Errorf("suppress list:\n%s", out.Stdout)
	}
	if out := cmdtest.Run(t, "suppress", "remove", "gone@dest.test"); out.Code != 0 {
		t.Fatalf("remove: %d %s", out.Code, out.Stderr)
	}
	l.mx.SetHook(nil) // the mailbox exists again
	if res := l.submit(t, "gone@dest.test"); res.Refused() != 0 {
		t.Errorf("still refused after remove: %+v", res.Recipients)
	}
	l.mx.Wait(t, 3, 10*time.Second)
	waitFor(t, "the third delivery in the log", func() bool {
		b, _ := os.ReadFile(l.dlog)
		return strings.Count(string(b), `"result":"delivered"`) == 3
	})

	m := l.metrics(t)
	for _, want := range []string{
		`relayctl_delivery_attempts_total{domain="dest.test",result="bounced"} 1`,
		`relayctl_delivery_attempts_total{domain="dest.test",result="delivered"} 3`,
		`relayctl_recipients_rejected_total{reason="suppressed"} 1`,
		`relayctl_suppressions_total{source="hard-bounce"} 1`,
		`relayctl_messages_accepted_total 3`,
		`relayctl_recipients_accepted_total 4`,
		`relayctl_delivery_latency_seconds_count 3`,
		`relayctl_delivery_tls_total{tls="false"}`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// report over the same delivery log: the bounce, and the DSN about it
	// to app@example.com, which has no MX in the lab and bounces too.
	waitFor(t, "the DSN's bounce", func() bool {
		b, _ := os.ReadFile(l.dlog)
		return strings.Contains(string(b), `"recipient":"app@example.com"`)
	})
	rep := cmdtest.Run(t, "--json", "report", "--log", l.dlog)
	var s struct{ Delivered, Bounced, Rejected int }
	json.Unmarshal(rep.Envelope(t).Result, &s)
	if rep.Code != 1 || s.Delivered != 3 || s.Bounced != 2 || s.Rejected != 1 {
		t.Errorf("report %s", rep.Stdout)
	}
}

// Queue administration against a running relay with deferred messages.
func TestQueueAdminAgainstRunningRelay(t *testing.T) {
	l := startLab(t, nil, nil)
	var mu sync.Mutex
	refuse := true
	l.mx.SetHook(func(cmd, arg string) error {
		mu.Lock()
		defer mu.Unlock()
		if refuse && cmd == "RCPT" {
			return smtptest.Reply(451, [3]int{4, 3, 0}, "try again later")
		}
		return nil
	})
	l.submit(t, "a@dest.test")
	l.submit(t, "b@other.test")
	l.submit(t, "c@dest.test")
	var envs []queue.Envelope
	waitFor(t, "three deferred messages", func() bool {
		r := cmdtest.Run(t, "--json", "queue", "list", "--state", "deferred")
		envs = nil
		json.Unmarshal(r.Envelope(t).Result, &envs)
		return len(envs) == 3
	})
	out := cmdtest.Run(t, "queue", "list")
	if !strings.Contains(out.Stdout, "deferred  a@dest.test  1 attempt(s), next in") || !strings.Contains(out.Stdout, "451 4.3.0 try again later") {
		t.Errorf("queue list:\n%s", out.Stdout)
	}
	ids := map[string]string{}
	for _, e := range envs {
		ids[e.Recipients[0].Address] = e.ID
	}
	show := cmdtest.Run(t, "queue", "show", ids["a@dest.test"])
	if !strings.Contains(show.Stdout, "Subject: test") || !strings.Contains(show.Stdout, "deferred  a@dest.test") {
		t.Errorf("show:\n%s", show.Stdout)
	}
	if r := cmdtest.Run(t, "queue", "hold", ids["c@dest.test"]); r.Code != 0 {
		t.Fatal(r.Stderr)
	}
	if r := cmdtest.Run(t, "queue", "delete", "--bounce", ids["b@other.test"]); r.Code != 0 {
		t.Fatalf("delete --bounce: %d %s %s", r.Code, r.Stdout, r.Stderr)
	}
	mu.Lock()
	refuse = false
	mu.Unlock()
	if r := cmdtest.Run(t, "queue", "retry", "--domain", "dest.test"); r.Code != 0 || !strings.Contains(r.Stdout, "1 message(s), 1 recipient(s) due now") {
		t.Fatalf("retry: %d %s %s", r.Code, r.Stdout, r.Stderr)
	}
	// a@ is delivered now; the bounce for b@ goes to app@example.com (no
	// MX for example.com in the lab: it stays deferred); c@ is held.
	msgs := l.mx.Wait(t, 1, 10*time.Second)
	if msgs[0].To[0] != "a@dest.test" {
		t.Errorf("delivered %v", msgs[0].To)
	}
	waitFor(t, "a@ gone from the queue", func() bool {
		r := cmdtest.Run(t, "--json", "queue", "list", "--domain", "dest.test")
		envs = nil
		json.Unmarshal(r.Envelope(t).Result, &envs)
		return len(envs) == 1
	})
	if envs[0].ID != ids["c@dest.test"] || envs[0].Recipients[0].State != queue.StateHeld {
		t.Errorf("remaining %+v", envs)
	}
	r := cmdtest.Run(t, "--json", "queue", "list")
	var all []queue.Envelope
	json.Unmarshal(r.Envelope(t).Result, &all)
	for _, e := range all {
		if e.ID == ids["b@other.test"] {
			t.Error("deleted message still queued")
		}
	}
	// the DSN went out from <> to the sender (whose domain has no MX in
	// the lab, so it is tried once and dropped: DSNs are never bounced)
	waitFor(t, "the DSN attempt", func() bool {
		b, _ := os.ReadFile(l.dlog)
		return strings.Contains(string(b), `"sender":"","recipient":"app@example.com"`)
	})
	if r := cmdtest.Run(t, "queue", "release", ids["c@dest.test"]); r.Code != 0 {
		t.Fatal(r.Stderr)
	}
	l.mx.Wait(t, 2, 10*time.Second)
}

func TestWebhookGetsSignedEvents(t *testing.T) {
	secret := "a-long-enough-webhook-secret"
	var mu sync.Mutex
	var got []events.Event
	bad := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if err := webhook.Verify([]byte(secret), r.Header.Get(webhook.HeaderTimestamp), r.Header.Get(webhook.HeaderSignature), body, time.Now(), time.Minute); err != nil {
			bad++
			w.WriteHeader(401)
			return
		}
		var e events.Event
		json.Unmarshal(body, &e)
		got = append(got, e)
	}))
	defer srv.Close()
	t.Setenv(operate.EnvWebhookSecret, secret)
	l := startLab(t, map[string]any{operate.KeyWebhookURL: srv.URL}, nil)
	l.mx.SetHook(func(cmd, arg string) error {
		if cmd == "RCPT" && arg == "gone@dest.test" {
			return smtptest.Reply(550, [3]int{5, 1, 1}, "no such user")
		}
		return nil
	})
	l.submit(t, "ok@dest.test", "gone@dest.test")
	waitFor(t, "two webhook events", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= 2 })
	waitFor(t, "the DSN's attempt", func() bool {
		b, _ := os.ReadFile(l.dlog)
		return strings.Contains(string(b), `"recipient":"app@example.com"`)
	})
	time.Sleep(50 * time.Millisecond) // a webhook for it would have been posted by now
	mu.Lock()
	defer mu.Unlock()
	results := map[string]events.Result{}
	for _, e := range got {
		results[e.Recipient] = e.Result
	}
	// the DSN about gone@ (from <> to app@example.com) is not the app's
	// business: no event for it
	if len(got) != 2 || results["ok@dest.test"] != events.Delivered || results["gone@dest.test"] != events.Bounced || bad != 0 {
		t.Errorf("webhook events %+v, bad signatures %d", got, bad)
	}
}

func TestMetricsListener(t *testing.T) {
	l := startLab(t, map[string]any{operate.KeyMetricsListen: "127.0.0.1:0"}, nil)
	waitFor(t, "metrics listener", func() bool { return l.ops.MetricsAddr.Load() != nil })
	l.submit(t, "ok@dest.test")
	l.mx.Wait(t, 1, 10*time.Second)
	var body string
	waitFor(t, "queue gauge", func() bool {
		resp, err := http.Get("http://" + l.ops.MetricsAddr.Load().(string) + "/metrics")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		return strings.Contains(body, `relayctl_delivery_attempts_total{domain="dest.test",result="delivered"} 1`)
	})
	if !strings.Contains(body, "relayctl_queue_messages") || !strings.Contains(body, "relayctl_queue_oldest_message_age_seconds") {
		t.Errorf("metrics:\n%s", body)
	}
	fi, err := os.Stat(l.ops.Socket)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("admin socket %v %v", fi, err)
	}
}

func TestSetupConfigErrors(t *testing.T) {
	for name, set := range map[string]map[string]any{
		"webhook without secret": {operate.KeyWebhookURL: "http://127.0.0.1:1/h"},
		"webhook bad url":        {operate.KeyWebhookURL: "ftp://x", operate.KeyWebhookSecret: "/nonexistent"},
		"bad suppression action": {"serve.suppression.action": "discard"},
		"bad metrics listen":     {operate.KeyMetricsListen: "nonsense"},
		"negative max_inflight":  {operate.KeyStreams: map[string]any{"list": []any{map[string]any{"name": "transactional", "max_inflight": -1}}}},
		"bad webhook events":     {operate.KeyWebhookURL: "http://127.0.0.1:1/h", operate.KeyWebhookResults: []string{"opened"}},
	} {
		t.Setenv(operate.EnvWebhookSecret, "")
		if name == "bad webhook events" {
			t.Setenv(operate.EnvWebhookSecret, "a-long-enough-webhook-secret")
		}
		f, _, _, _ := cmdutil.NewTestFactory()
		for k, v := range set {
			f.Config.Set(k, v)
		}
		cfg := relay.Config{Spool: t.TempDir()}
		if _, err := operate.Setup(f, &cfg, nil); cmdutil.ExitCode(err) != 2 {
			t.Errorf("%s: %v (exit %d)", name, err, cmdutil.ExitCode(err))
		}
	}
}

// A 421 from one destination pauses that destination only: the next
// message there waits without an attempt, others go at once.
func TestThrottleReplyPausesOnlyThatDestination(t *testing.T) {
	l := startLab(t, map[string]any{"serve.throttle": map[string]any{"pause": "1h"}}, nil)
	var mu sync.Mutex
	slow := 0
	l.mx.SetHook(func(cmd, arg string) error {
		if cmd == "RCPT" && strings.HasSuffix(arg, "@dest.test") {
			mu.Lock()
			defer mu.Unlock()
			slow++
			if slow == 1 {
				return smtptest.Reply(421, [3]int{4, 7, 0}, "[TS01] too many messages, slow down")
			}
		}
		return nil
	})
	l.submit(t, "a@dest.test")
	waitFor(t, "the 421", func() bool {
		b, _ := os.ReadFile(l.dlog)
		return strings.Contains(string(b), "too many messages")
	})
	if until, paused := l.ops.Throttle.Paused("dest.test"); !paused || time.Until(until) < 50*time.Minute {
		t.Fatalf("dest.test not paused: %v %v", until, paused)
	}
	queuedB := l.submit(t, "b@dest.test").QueueID
	l.submit(t, "c@other.test")
	if got := l.mx.Wait(t, 1, 10*time.Second); got[0].To[0] != "c@other.test" {
		t.Fatalf("delivered %v", got[0].To)
	}
	var envs []queue.Envelope
	waitFor(t, "b@ postponed", func() bool {
		r := cmdtest.Run(t, "--json", "queue", "list", "--domain", "dest.test")
		envs = nil
		json.Unmarshal(r.Envelope(t).Result, &envs)
		for _, e := range envs {
			if rc := e.Recipients[0]; rc.Address == "b@dest.test" && time.Until(rc.NextAttempt) > 50*time.Minute {
				return true
			}
		}
		return false
	})
	for _, e := range envs {
		if rc := e.Recipients[0]; rc.Address == "b@dest.test" && rc.Attempts != 0 {
			t.Errorf("b@ was attempted while its destination was paused: %+v", rc)
		}
		if e.Recipients[0].Address == "b@dest.test" && e.ID != queuedB {
			t.Errorf("the relay's reply named queue id %q, the queue holds %q", queuedB, e.ID)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if slow != 1 {
		t.Errorf("%d RCPTs to the paused destination, want 1", slow)
	}
	out := cmdtest.Run(t, "queue", "throttles")
	if out.Code != 0 || !strings.Contains(out.Stdout, "dest.test  0 connection(s)") || !strings.Contains(out.Stdout, "paused for 59m") || !strings.Contains(out.Stdout, "too many messages") {
		t.Errorf("queue throttles: %d\n%s", out.Code, out.Stdout)
	}
	if m := l.metrics(t); !strings.Contains(m, "relayctl_destinations_paused 1") {
		t.Error("metrics lack the paused destination")
	}
}

// A transactional message overtakes a 5,000-message bulk backlog.
func TestTransactionalOvertakesBulkBacklog(t *testing.T) {
	if testing.Short() {
		t.Skip("5,000 messages")
	}
	l := startLab(t, nil, func(c *relay.Config) {
		c.NoFsync = true
		c.Delivery.Concurrency = 2
	})
	l.mx.SetHook(func(cmd, arg string) error {
		if cmd == "DATA" {
			time.Sleep(10 * time.Millisecond) // a receiver that takes its time
		}
		return nil
	})
	const backlog = 5000
	content := "From: news@example.com\r\nSubject: offer\r\n\r\nbuy\r\n"
	for i := range backlog {
		env := &queue.Envelope{From: "news@example.com", Stream: "bulk", Received: time.Now(),
			Recipients: []queue.Recipient{{Address: "u" + strconv.Itoa(i) + "@dest.test", State: queue.StateQueued}}}
		if _, err := l.r.Queue.Enqueue(env, strings.NewReader(content)); err != nil {
			t.Fatal(err)
		}
	}
	sent, already := time.Now(), len(l.mx.Messages())
	msg := "From: shop@example.com\r\nTo: vip@other.test\r\nSubject: your receipt\r\n\r\nthanks\r\n"
	if res, err := submit.Send(context.Background(), submit.Options{Addr: l.addr, Hello: "app.test"}, "shop@example.com", []string{"vip@other.test"}, []byte(msg)); err != nil || res.Refused() != 0 {
		t.Fatalf("submit: %v %+v", err, res)
	}
	var before int
	waitFor(t, "the transactional message", func() bool {
		for i, m := range l.mx.Messages() {
			if m.To[0] == "vip@other.test" {
				before = i
				return true
			}
		}
		return false
	})
	took := time.Since(sent)
	left := l.r.Queue.Len()
	// deliveries under way when it arrived finish first; nothing else
	overtaken := before - already
	t.Logf("transactional delivered %v after submission; %d bulk deliveries in between; %d bulk still queued", took, overtaken, left)
	if left < backlog/2 || overtaken > 10 {
		t.Errorf("transactional waited behind the backlog: %d delivered in between, %d left", overtaken, left)
	}
}

// Streams send from their own address and HELO name.
func TestStreamIdentity(t *testing.T) {
	if l, err := net.Listen("tcp", "127.0.0.2:0"); err != nil {
		t.Skipf("cannot bind 127.0.0.2 on this host: %v", err)
	} else {
		l.Close()
	}
	l := startLab(t, map[string]any{"serve.streams": map[string]any{
		"list": []any{
			map[string]any{"name": "transactional", "priority": 10},
			map[string]any{"name": "bulk", "priority": 0, "source_ip": "127.0.0.2", "hello": "bulk.relay.test"},
		},
		"sender_domains": map[string]any{"news.example.com": "bulk"},
	}}, nil)
	l.submit(t, "a@dest.test") // transactional (default)
	msg := "From: news@news.example.com\r\nSubject: offer\r\n\r\nbuy\r\n"
	if _, err := submit.Send(context.Background(), submit.Options{Addr: l.addr, Hello: "app.test"}, "news@news.example.com", []string{"b@dest.test"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	got := l.mx.Wait(t, 2, 10*time.Second)
	by := map[string]smtptest.Message{}
	for _, m := range got {
		by[m.To[0]] = m
	}
	if m := by["a@dest.test"]; m.RemoteIP != "127.0.0.1" || m.Helo != "relay.test" {
		t.Errorf("transactional sent from %s as %s", m.RemoteIP, m.Helo)
	}
	if m := by["b@dest.test"]; m.RemoteIP != "127.0.0.2" || m.Helo != "bulk.relay.test" {
		t.Errorf("bulk sent from %s as %s", m.RemoteIP, m.Helo)
	}
	waitFor(t, "the stream in the delivery log", func() bool {
		b, _ := os.ReadFile(l.dlog)
		return strings.Contains(string(b), `"recipient":"b@dest.test","domain":"dest.test","stream":"bulk"`)
	})
}

// With action drop a suppressed recipient is accepted at RCPT but never
// sent: the other recipient of the same message is delivered, the
// dropped one is logged as a suppressed event, counted in the metrics
// and the report, and a message whose only recipient is dropped does
// not stay in the queue.
func TestSuppressedRecipientDropped(t *testing.T) {
	l := startLab(t, map[string]any{"serve.suppression.action": "drop"}, nil)
	if err := l.ops.Suppress.Add(suppress.Entry{Address: "gone@dest.test", Reason: "asked us to stop"}); err != nil {
		t.Fatal(err)
	}
	res := l.submit(t, "gone@dest.test", "ok@dest.test")
	for _, rc := range res.Recipients {
		if !rc.Accepted || rc.Reply.Code != 250 {
			t.Fatalf("RCPT %s: %+v", rc.Address, rc)
		}
	}
	if res.QueueID == "" {
		t.Fatalf("no queue id in the reply to DATA: %+v", res)
	}
	got := l.mx.Wait(t, 1, 10*time.Second)
	if len(got[0].To) != 1 || got[0].To[0] != "ok@dest.test" {
		t.Fatalf("receiver got the message for %v", got[0].To)
	}

	// every recipient dropped: accepted, never queued, never sent
	only := l.submit(t, "GONE@dest.test")
	if only.Refused() != 0 || only.QueueID == "" {
		t.Fatalf("all-dropped message: %+v", only)
	}
	waitFor(t, "both drops and the delivery in the log", func() bool {
		b, _ := os.ReadFile(l.dlog)
		return strings.Count(string(b), `"result":"suppressed"`) == 2 && strings.Contains(string(b), `"result":"delivered"`)
	})
	var drops []events.Event
	f, err := os.Open(l.dlog)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	events.Read(f, func(e events.Event) error {
		if e.Result == events.Suppressed {
			drops = append(drops, e)
		}
		return nil
	})
	if e := drops[0]; e.QueueID != res.QueueID || e.Recipient != "gone@dest.test" || e.Stream != "transactional" ||
		!strings.Contains(e.Response, "<gone@dest.test> is on the suppression list (manual: asked us to stop") {
		t.Errorf("first drop event: %+v (queue id %s)", e, res.QueueID)
	}
	if e := drops[1]; e.QueueID != only.QueueID || e.Recipient != "GONE@dest.test" {
		t.Errorf("second drop event: %+v (queue id %s)", e, only.QueueID)
	}
	if n := l.r.Queue.Len(); n != 0 {
		t.Errorf("%d message(s) still queued", n)
	}
	if _, err := l.r.Queue.Get(only.QueueID); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("the all-dropped message is in the queue: %v", err)
	}
	time.Sleep(200 * time.Millisecond) // give a wrong delivery a chance to show
	if n := len(l.mx.Messages()); n != 1 {
		t.Errorf("receiver got %d messages, want 1", n)
	}

	m := l.metrics(t)
	for _, want := range []string{
		`relayctl_recipients_dropped_total 2`,
		`relayctl_delivery_attempts_total{domain="dest.test",result="delivered"} 1`,
		`relayctl_messages_accepted_total 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(m, `relayctl_recipients_rejected_total{reason="suppressed"}`) {
		t.Error("a dropped recipient counted as rejected")
	}
	rep := cmdtest.Run(t, "--json", "report", "--log", l.dlog)
	var s struct{ Recipients, Delivered, Bounced, Suppressed int }
	json.Unmarshal(rep.Envelope(t).Result, &s)
	if rep.Code != 0 || s.Recipients != 1 || s.Delivered != 1 || s.Bounced != 0 || s.Suppressed != 2 {
		t.Errorf("report %d %s", rep.Code, rep.Stdout)
	}
	if out := cmdtest.Run(t, "report", "--log", l.dlog); !strings.Contains(out.Stdout, "dropped            2") {
		t.Errorf("human report:\n%s", out.Stdout)
	}
}

// A stream's max_inflight keeps its backlog from taking every delivery
// slot: with 4 slots and bulk capped at 2, slow bulk deliveries never
// exceed 2 at once and a transactional message goes out while they hang.
func TestStreamMaxInflight(t *testing.T) {
	l := startLab(t, map[string]any{"serve.streams": map[string]any{
		"list": []any{
			map[string]any{"name": "transactional", "priority": 10},
			map[string]any{"name": "bulk", "priority": 0, "max_inflight": 2},
		},
	}}, func(c *relay.Config) {
		c.NoFsync = true
		c.Delivery.Concurrency = 4
	})
	release := make(chan struct{})
	var releaseOnce sync.Once
	open := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(open) // before the lab stops
	var mu sync.Mutex
	inData, maxInData := 0, 0
	l.mx.SetHook(func(cmd, arg string) error {
		if cmd != "DATA" || !strings.HasPrefix(arg, "bulk") {
			return nil
		}
		mu.Lock()
		inData++
		maxInData = max(maxInData, inData)
		mu.Unlock()
		<-release // a receiver that hangs on bulk mail
		mu.Lock()
		inData--
		mu.Unlock()
		return nil
	})
	const backlog = 10
	for i := range backlog {
		env := &queue.Envelope{From: "news@example.com", Stream: "bulk", Received: time.Now(),
			Recipients: []queue.Recipient{{Address: "bulk" + strconv.Itoa(i) + "@dest.test", State: queue.StateQueued}}}
		if _, err := l.r.Queue.Enqueue(env, strings.NewReader("From: news@example.com\r\nSubject: offer\r\n\r\nbuy\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "two bulk deliveries hanging", func() bool { mu.Lock(); defer mu.Unlock(); return inData == 2 })
	time.Sleep(300 * time.Millisecond) // room for a third, were the cap not kept
	mu.Lock()
	if maxInData != 2 {
		t.Errorf("%d bulk deliveries at once, want 2", maxInData)
	}
	mu.Unlock()
	if m := l.metrics(t); !strings.Contains(m, `relayctl_stream_deliveries_in_flight{stream="bulk"} 2`) ||
		!strings.Contains(m, `relayctl_stream_deliveries_in_flight{stream="transactional"} 0`) {
		t.Errorf("metrics lack the streams' deliveries in flight:\n%s", grepLines(m, "in_flight"))
	}

	l.submit(t, "vip@other.test") // transactional (the default stream)
	waitFor(t, "the transactional message past the hanging bulk ones", func() bool {
		for _, m := range l.mx.Messages() {
			if m.To[0] == "vip@other.test" {
				return true
			}
		}
		return false
	})
	open()
	l.mx.Wait(t, backlog+1, 20*time.Second)
	mu.Lock()
	defer mu.Unlock()
	if maxInData != 2 {
		t.Errorf("%d bulk deliveries at once, want at most 2", maxInData)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
