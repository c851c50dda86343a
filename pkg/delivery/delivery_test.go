package delivery

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/relayctl/relayctl/pkg/dnsclient"
	"github.com/relayctl/relayctl/pkg/dnstest"
	"github.com/relayctl/relayctl/pkg/events"
	"github.com/relayctl/relayctl/pkg/queue"
	"github.com/relayctl/relayctl/pkg/smtptest"
)

const testMsg = "From: app@sender.test\r\nTo: someone@example.test\r\nSubject: Invoice 42\r\nMessage-ID: <42@sender.test>\r\n\r\nPlease pay.\r\n.leading dot\r\n"

// lab is a queue, a test DNS server and an engine config pointing at
// loopback sinks.
type lab struct {
	t   *testing.T
	dns *dnstest.Server
	q   *queue.Queue
	cfg Config

	mu  sync.Mutex
	evs []events.Event
}

func newLab(t *testing.T, zone string, port int) *lab {
	t.Helper()
	l := &lab{t: t, dns: dnstest.Start(t, zone)}
	r, err := dnsclient.New([]string{l.dns.Addr()}, dnsclient.WithTimeout(500*time.Millisecond), dnsclient.WithRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	q, err := queue.Open(t.TempDir(), queue.Options{Fsync: false})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	l.q = q
	l.cfg = Config{
		Hostname: "relay.test", Resolver: r, Port: port,
		Backoff:     Backoff{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond, Lifetime: time.Hour, Jitter: 0.01},
		DialTimeout: 2 * time.Second, CommandTimeout: 5 * time.Second, DataTimeout: 5 * time.Second,
		Events: func(e events.Event) { l.mu.Lock(); l.evs = append(l.evs, e); l.mu.Unlock() },
	}
	return l
}

func (l *lab) events() []events.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]events.Event(nil), l.evs...)
}

// run starts the engine; it is stopped (and must return) when the test ends.
func (l *lab) run() (stop func()) {
	l.t.Helper()
	e, err := New(l.cfg, l.q)
	if err != nil {
		l.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				l.t.Error("engine did not stop within 10s")
			}
		})
	}
	l.t.Cleanup(stop)
	return stop
}

func (l *lab) enqueue(from string, rcpts ...string) string {
	l.t.Helper()
	env := &queue.Envelope{From: from, MessageID: "<42@sender.test>"}
	for _, r := range rcpts {
		env.Recipients = append(env.Recipients, queue.Recipient{Address: r})
	}
	return l.enqueueEnv(env)
}

func (l *lab) enqueueEnv(env *queue.Envelope) string {
	l.t.Helper()
	id, err := l.q.Enqueue(env, strings.NewReader(testMsg))
	if err != nil {
		l.t.Fatal(err)
	}
	return id
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// freePort returns a port free on 127.0.0.1 (sinks on 127.0.0.x share it,
// as MX hosts share port 25).
func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

const labZone = `
$ORIGIN example.test.
@    MX 10 mx1
@    MX 20 mx2
mx1  A 127.0.0.2
mx2  A 127.0.0.3
$ORIGIN sender.test.
@    MX 10 mx
mx   A 127.0.0.4
$ORIGIN null.test.
@    MX 0 .
$ORIGIN implicit.test.
@    A 127.0.0.3
$ORIGIN v6.test.
@    MX 10 mx
mx   AAAA ::1
mx   A 127.0.0.3
$ORIGIN broken.test.
@    MX 10 mx
mx   A 127.0.0.3
`

// mx1 does not answer; mx2 (preference 20) offers STARTTLS and takes it.
func TestDeliverMXFallbackTLS(t *testing.T) {
	port := freePort(t)
	mx2 := startSink(t, sinkOpts{ip: "127.0.0.3", port: port, startTLS: true})
	l := newLab(t, labZone, port)
	id := l.enqueue("app@sender.test", "someone@example.test")
	l.run()
	waitFor(t, "delivery", func() bool { return len(mx2.messages()) == 1 })
	m := mx2.messages()[0]
	if !m.TLS || m.From != "app@sender.test" || m.To[0] != "someone@example.test" {
		t.Fatalf("received %+v", m)
	}
	if !bytes.Equal(m.Data, []byte(testMsg)) {
		t.Fatalf("content changed in transit:\n%q", m.Data)
	}
	if m.Mail.Size != int64(len(testMsg)) {
		t.Errorf("SIZE = %d, want %d", m.Mail.Size, len(testMsg))
	}
	waitFor(t, "removal", func() bool { _, err := l.q.Get(id); return err != nil })
	waitFor(t, "the event", func() bool { return len(l.events()) >= 1 })
	ev := l.events()
	if len(ev) != 1 || ev[0].Result != events.Delivered || !ev[0].TLS || ev[0].RemoteHost != "mx2.example.test" ||
		ev[0].RemoteIP != "127.0.0.3" || ev[0].Code != 250 || ev[0].Attempt != 1 {
		t.Fatalf("events %+v", ev)
	}
}

// A greylisting receiver: 451 on the first try, then 250.
func TestGreylisting(t *testing.T) {
	port := freePort(t)
	mx1 := startSink(t, sinkOpts{ip: "127.0.0.2", port: port, decide: func(cmd, arg string, n int) error {
		if cmd == "RCPT" && n == 1 {
			return smtptest.Reply(451, [3]int{4, 7, 1}, "greylisted, try again later")
		}
		return nil
	}})
	l := newLab(t, labZone, port)
	l.enqueue("app@sender.test", "someone@example.test")
	start := time.Now()
	l.run()
	waitFor(t, "delivery on retry", func() bool { return len(mx1.messages()) == 1 })
	waitFor(t, "two events", func() bool { return len(l.events()) >= 2 })
	ev := l.events()
	if len(ev) != 2 || ev[0].Result != events.Deferred || ev[0].Code != 451 || ev[0].EnhancedCode != "4.7.1" ||
		ev[1].Result != events.Delivered || ev[1].Attempt != 2 {
		t.Fatalf("events %+v", ev)
	}
	if gap := ev[1].Time.Sub(ev[0].Time); gap < 45*time.Millisecond {
		t.Fatalf("retried after %v, before the backoff", gap)
	}
	t.Logf("delivered after greylisting in %v", time.Since(start))
}

// One message, three recipients: one delivered, one deferred, one
// bounced — and the bounce goes back to the sender as an RFC 3464 DSN.
func TestMixedRecipientsAndBounceDSN(t *testing.T) {
	port := freePort(t)
	mx1 := startSink(t, sinkOpts{ip: "127.0.0.2", port: port, decide: func(cmd, arg string, n int) error {
		switch {
		case cmd == "RCPT" && arg == "later@example.test":
			return smtptest.Reply(452, [3]int{4, 2, 2}, "mailbox full")
		case cmd == "RCPT" && arg == "nobody@example.test":
			return smtptest.Reply(550, [3]int{5, 1, 1}, "no such user")
		}
		return nil
	}})
	senderMX := startSink(t, sinkOpts{ip: "127.0.0.4", port: port})
	l := newLab(t, labZone, port)
	l.cfg.Backoff.Initial = time.Hour // keep the deferred one deferred
	env := &queue.Envelope{From: "app@sender.test", EnvID: "inv-42", Ret: queue.RetHdrs, Recipients: []queue.Recipient{
		{Address: "ok@example.test"}, {Address: "later@example.test"}, {Address: "nobody@example.test", ORcpt: "rfc822;Nobody@Example.test"},
	}}
	id := l.enqueueEnv(env)
	l.run()
	waitFor(t, "the DSN", func() bool { return len(senderMX.messages()) == 1 })
	if got := mx1.messages(); len(got) != 1 || len(got[0].To) != 1 || got[0].To[0] != "ok@example.test" {
		t.Fatalf("mx1 got %+v", got)
	}
	// The receiver advertised DSN: our ENVID/RET/ORCPT went on.
	if m := mx1.messages()[0]; m.Mail.EnvelopeID != "inv-42" || m.Mail.Return != smtp.DSNReturnHeaders {
		t.Errorf("DSN MAIL parameters not passed on: %+v", m.Mail)
	}
	waitFor(t, "the states recorded", func() bool {
		cur, err := l.q.Get(id)
		return err == nil && cur.Recipients[0].State == queue.StateDelivered
	})
	cur, err := l.q.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	st := map[string]queue.State{}
	for _, r := range cur.Recipients {
		st[r.Address] = r.State
	}
	if st["ok@example.test"] != queue.StateDelivered || st["later@example.test"] != queue.StateDeferred || st["nobody@example.test"] != queue.StateBounced {
		t.Fatalf("states %v", st)
	}
	if r := cur.Recipients[1]; r.LastResponse != "452 4.2.2 mailbox full" || r.NextAttempt.Before(time.Now().Add(30*time.Minute)) {
		t.Fatalf("deferred recipient %+v", r)
	}

	b := senderMX.messages()[0]
	if b.From != "" || b.To[0] != "app@sender.test" {
		t.Fatalf("DSN envelope %q → %v, want <> → app@sender.test", b.From, b.To)
	}
	hdr, parts := parseReport(t, b.Data)
	if hdr.Get("Auto-Submitted") != "auto-replied" || !strings.Contains(hdr.Get("Subject"), "Undelivered") {
		t.Errorf("DSN header %v", hdr)
	}
	ds := parts["message/delivery-status"]
	for _, want := range []string{"Reporting-MTA: dns; relay.test", "Original-Envelope-Id: inv-42",
		"Final-Recipient: rfc822; nobody@example.test", "Original-Recipient: rfc822; Nobody@Example.test",
		"Action: failed", "Status: 5.1.1", "Remote-MTA: dns; mx1.example.test", "Diagnostic-Code: smtp; 550 5.1.1 no such user"} {
		if !strings.Contains(ds, want) {
			t.Errorf("delivery-status lacks %q:\n%s", want, ds)
		}
	}
	if strings.Contains(ds, "ok@example.test") || strings.Contains(ds, "later@example.test") {
		t.Errorf("DSN names recipients that did not fail:\n%s", ds)
	}
	if h := parts["text/rfc822-headers"]; !strings.Contains(h, "Subject: Invoice 42") || strings.Contains(h, "Please pay") {
		t.Errorf("original headers part: %q", h)
	}
	// The DSN itself is delivered and gone; it never produces another.
	waitFor(t, "DSN removal", func() bool { return l.q.Len() == 1 })
}

func parseReport(t *testing.T, data []byte) (mail.Header, map[string]string) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("DSN Content-Type %q", m.Header.Get("Content-Type"))
	}
	parts := map[string]string{}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		parts[ct] = string(b)
	}
	return m.Header, parts
}

// Null MX (RFC 7505), NXDOMAIN and an implicit MX without addresses bounce
// at once; a DNS failure defers.
func TestDNSOutcomes(t *testing.T) {
	port := freePort(t)
	senderMX := startSink(t, sinkOpts{ip: "127.0.0.4", port: port})
	implicit := startSink(t, sinkOpts{ip: "127.0.0.3", port: port})
	l := newLab(t, labZone, port)
	l.cfg.Backoff.Initial = time.Hour
	l.dns.Set("servfail.test.", 0, dnstest.ServFail)
	id := l.enqueue("app@sender.test", "a@null.test", "b@nxdomain.test", "c@servfail.test", "d@implicit.test")
	l.run()
	waitFor(t, "the DSN", func() bool { return len(senderMX.messages()) == 1 })
	waitFor(t, "implicit MX delivery", func() bool { return len(implicit.messages()) == 1 })
	waitFor(t, "events for the four recipients", func() bool {
		n := 0
		for _, e := range l.events() {
			if strings.HasSuffix(e.Domain, ".test") && e.Sender != "" {
				n++
			}
		}
		return n >= 4
	})
	res := map[string]events.Event{}
	for _, e := range l.events() {
		res[e.Recipient] = e
	}
	for rcpt, want := range map[string]struct {
		r   events.Result
		enh string
	}{
		"a@null.test": {events.Bounced, "5.1.10"}, "b@nxdomain.test": {events.Bounced, "5.1.2"},
		"c@servfail.test": {events.Deferred, "4.4.3"}, "d@implicit.test": {events.Delivered, "2.0.0"},
	} {
		if e := res[rcpt]; e.Result != want.r || e.EnhancedCode != want.enh {
			t.Errorf("%s: %s %s (%s), want %s %s", rcpt, e.Result, e.EnhancedCode, e.Response, want.r, want.enh)
		}
	}
	_, parts := parseReport(t, senderMX.messages()[0].Data)
	ds := parts["message/delivery-status"]
	if !strings.Contains(ds, "a@null.test") || !strings.Contains(ds, "Status: 5.1.10") || !strings.Contains(ds, "b@nxdomain.test") {
		t.Errorf("DSN:\n%s", ds)
	}
	if env, err := l.q.Get(id); err != nil || len(env.Recipients) != 4 || env.Recipients[2].State != queue.StateDeferred {
		t.Fatalf("queue: %+v %v", env, err)
	}
}

// A receiver that keeps deferring: a delay DSN once, then expiry and a
// failure DSN after the lifetime.
func TestDelayAndExpiry(t *testing.T) {
	port := freePort(t)
	startSink(t, sinkOpts{ip: "127.0.0.2", port: port, decide: func(cmd, arg string, n int) error {
		if cmd == "RCPT" {
			return smtptest.Reply(421, [3]int{4, 3, 2}, "try later")
		}
		return nil
	}})
	senderMX := startSink(t, sinkOpts{ip: "127.0.0.4", port: port})
	l := newLab(t, labZone, port)
	l.cfg.Backoff = Backoff{Initial: 40 * time.Millisecond, Max: 80 * time.Millisecond, Lifetime: 600 * time.Millisecond, Jitter: 0.01}
	l.cfg.DelayNotify = 150 * time.Millisecond
	id := l.enqueue("app@sender.test", "slow@example.test")
	l.run()
	waitFor(t, "delay and failure DSNs", func() bool { return len(senderMX.messages()) == 2 })
	waitFor(t, "the expired message to leave the queue", func() bool { _, err := l.q.Get(id); return err != nil })
	h1, p1 := parseReport(t, senderMX.messages()[0].Data)
	h2, p2 := parseReport(t, senderMX.messages()[1].Data)
	if !strings.HasPrefix(h1.Get("Subject"), "Delayed") || !strings.Contains(p1["message/delivery-status"], "Action: delayed") ||
		!strings.Contains(p1["message/delivery-status"], "Will-Retry-Until:") {
		t.Errorf("first DSN is not a delay notice: %s\n%s", h1.Get("Subject"), p1["message/delivery-status"])
	}
	if !strings.HasPrefix(h2.Get("Subject"), "Undelivered") || !strings.Contains(p2["message/delivery-status"], "Action: failed") ||
		!strings.Contains(p2["message/delivery-status"], "Status: 4.3.2") {
		t.Errorf("second DSN is not the expiry failure: %s\n%s", h2.Get("Subject"), p2["message/delivery-status"])
	}
	waitFor(t, "the expired event", func() bool {
		for _, e := range l.events() {
			if e.Result == events.Expired {
				return true
			}
		}
		return false
	})
	ev := l.events()
	var expired int
	for _, e := range ev {
		if e.Result == events.Expired {
			expired++
		}
	}
	if expired != 1 {
		t.Errorf("%d expired events", expired)
	}
}

func TestBackoffSchedule(t *testing.T) {
	b := DefaultBackoff()
	want := []time.Duration{5 * time.Minute, 10 * time.Minute, 20 * time.Minute, 40 * time.Minute, time.Hour, time.Hour}
	for i, w := range want {
		if got := b.Base(i + 1); got != w {
			t.Errorf("Base(%d) = %v, want %v", i+1, got, w)
		}
		for k := 0; k < 50; k++ {
			if d := b.Delay(i + 1); d < time.Duration(float64(w)*0.8) || d > time.Duration(float64(w)*1.2) {
				t.Fatalf("Delay(%d) = %v outside ±20%% of %v", i+1, d, w)
			}
		}
	}
	if b.Lifetime != 120*time.Hour {
		t.Errorf("lifetime %v", b.Lifetime)
	}
	// Attempts over five days with the default schedule: 4 ramp-up tries
	// then hourly.
	var n int
	for at, i := time.Duration(0), 1; at < b.Lifetime; i++ {
		at += b.Base(i)
		n++
	}
	if n < 115 || n > 125 {
		t.Errorf("%d attempts in 5 days", n)
	}
}

// Several messages to one host share a connection.
func TestConnectionReuse(t *testing.T) {
	port := freePort(t)
	mx1 := startSink(t, sinkOpts{ip: "127.0.0.2", port: port})
	l := newLab(t, labZone, port)
	l.cfg.Concurrency = 1
	for i := 0; i < 5; i++ {
		l.enqueue("app@sender.test", fmt.Sprintf("r%d@example.test", i))
	}
	l.run()
	waitFor(t, "5 deliveries", func() bool { return len(mx1.messages()) == 5 })
	if n := mx1.connCount(); n != 1 {
		t.Fatalf("%d connections for 5 messages, want 1", n)
	}
}

// NOTIFY=SUCCESS to a receiver without DSN support: we send a "relayed"
// notice; NOTIFY=NEVER suppresses the bounce.
func TestNotifyHonoured(t *testing.T) {
	port := freePort(t)
	startSink(t, sinkOpts{ip: "127.0.0.2", port: port, noDSN: true, decide: func(cmd, arg string, n int) error {
		if cmd == "RCPT" && arg == "gone@example.test" {
			return smtptest.Reply(550, [3]int{5, 1, 1}, "no such user")
		}
		return nil
	}})
	senderMX := startSink(t, sinkOpts{ip: "127.0.0.4", port: port})
	l := newLab(t, labZone, port)
	l.enqueueEnv(&queue.Envelope{From: "app@sender.test", Recipients: []queue.Recipient{
		{Address: "ok@example.test", Notify: []string{"SUCCESS"}},
		{Address: "gone@example.test", Notify: []string{"NEVER"}},
	}})
	l.run()
	waitFor(t, "the relayed notice", func() bool { return len(senderMX.messages()) == 1 })
	time.Sleep(200 * time.Millisecond)
	if n := len(senderMX.messages()); n != 1 {
		t.Fatalf("%d notices, want only the success one", n)
	}
	_, parts := parseReport(t, senderMX.messages()[0].Data)
	if ds := parts["message/delivery-status"]; !strings.Contains(ds, "Action: relayed") || strings.Contains(ds, "gone@") {
		t.Fatalf("notice:\n%s", ds)
	}
}

// RequireTLS defers rather than deliver in the clear.
func TestRequireTLS(t *testing.T) {
	port := freePort(t)
	mx := startSink(t, sinkOpts{ip: "127.0.0.3", port: port})
	l := newLab(t, labZone, port)
	l.cfg.RequireTLS = true
	res := DeliverNow(context.Background(), l.cfg, "app@sender.test", []string{"x@broken.test"}, []byte(testMsg))
	if res[0].Outcome != events.Deferred || res[0].Enhanced != "4.7.10" || len(mx.messages()) != 0 {
		t.Fatalf("result %+v, %d messages", res[0], len(mx.messages()))
	}
}

// The MX refuses the message over IPv6 (no PTR, say): retried over IPv4
// at once. Nothing listens on ::1 for the connection case.
func TestIPv6FallsBackToIPv4(t *testing.T) {
	port := freePort(t)
	v4 := startSink(t, sinkOpts{ip: "127.0.0.3", port: port})
	l := newLab(t, labZone, port)
	res := DeliverNow(context.Background(), l.cfg, "app@sender.test", []string{"x@v6.test"}, []byte(testMsg))
	if res[0].Outcome != events.Delivered || res[0].IP != "127.0.0.3" || len(v4.messages()) != 1 {
		t.Fatalf("connection refused over IPv6: %+v", res[0])
	}
	v6, err := net.Listen("tcp", net.JoinHostPort("::1", fmt.Sprint(port)))
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	v6.Close()
	startSink(t, sinkOpts{ip: "::1", port: port, decide: func(cmd, arg string, n int) error {
		if cmd == "MAIL" {
			return smtptest.Reply(550, [3]int{5, 7, 25}, "no PTR for your IPv6 address")
		}
		return nil
	}})
	res = DeliverNow(context.Background(), l.cfg, "app@sender.test", []string{"y@v6.test"}, []byte(testMsg))
	if res[0].Outcome != events.Delivered || res[0].IP != "127.0.0.3" || len(v4.messages()) != 2 {
		t.Fatalf("message refused over IPv6: %+v", res[0])
	}
}

// Stopping the engine mid-delivery leaves the message queued as it was;
// a new engine on the reopened queue delivers it.
func TestStopMidDeliveryAndRestart(t *testing.T) {
	port := freePort(t)
	release := make(chan struct{})
	var slow sync.Once
	mx := startSink(t, sinkOpts{ip: "127.0.0.2", port: port, decide: func(cmd, arg string, n int) error {
		if cmd == "DATA" {
			slow.Do(func() {
				select {
				case <-release:
				case <-time.After(5 * time.Second):
				}
			})
		}
		return nil
	}})
	l := newLab(t, labZone, port)
	dir := l.q.Dir()
	id := l.enqueue("app@sender.test", "someone@example.test")
	stop := l.run()
	waitFor(t, "the DATA in flight", func() bool {
		mx.mu.Lock()
		defer mx.mu.Unlock()
		return mx.seen["DATA someone@example.test"] == 1
	})
	stop()
	close(release)
	env, err := l.q.Get(id)
	if err != nil || env.Recipients[0].State != queue.StateQueued || env.Recipients[0].Attempts != 0 {
		t.Fatalf("after stop: %+v %v", env, err)
	}
	l.q.Close()
	q2, err := queue.Open(dir, queue.Options{Fsync: false})
	if err != nil {
		t.Fatal(err)
	}
	defer q2.Close()
	l.q = q2
	l.run()
	waitFor(t, "delivery after restart", func() bool { _, err := q2.Get(id); return err != nil })
	if n := len(mx.messages()); n < 1 {
		t.Fatalf("%d messages at the MX", n)
	}
}

func TestDeliverNowRoute(t *testing.T) {
	s := startSink(t, sinkOpts{})
	cfg := Config{Hostname: "relay.test", Routes: map[string]string{"*": s.Addr}, DialTimeout: time.Second, CommandTimeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res := DeliverNow(ctx, cfg, "a@b.test", []string{"x@anywhere.test", "y@elsewhere.test", "bad-address"}, []byte(testMsg))
	if res[0].Outcome != events.Delivered || res[1].Outcome != events.Delivered || res[2].Outcome != events.Bounced {
		t.Fatalf("results %+v", res)
	}
	if _, err := New(Config{}, nil); err == nil {
		t.Fatal("New without a queue")
	}
}

func TestBackoffDefaults(t *testing.T) {
	if got := (Backoff{}).withDefaults(); got != DefaultBackoff() {
		t.Fatalf("zero Backoff → %+v", got)
	}
	if got := (Backoff{Initial: time.Second, Max: time.Millisecond}).withDefaults(); got.Max != time.Second || got.Jitter != 0 || got.Lifetime != 120*time.Hour {
		t.Fatalf("partial Backoff → %+v", got)
	}
}

// A smarthost route with implicit TLS (verified) and AUTH PLAIN.
func TestRouteImplicitTLSAndAuth(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{ImplicitTLS: true, Users: map[string]string{"relay": "s3cret"}})
	cfg := Config{Hostname: "relay.test", RootCAs: s.RootCAs, DialTimeout: time.Second, CommandTimeout: 5 * time.Second,
		RouteSettings: map[string]Route{"*": {Addr: s.Addr, TLS: TLSImplicit, Username: "relay", Password: "s3cret"}}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res := DeliverNow(ctx, cfg, "app@sender.test", []string{"x@example.test"}, []byte(testMsg))
	if res[0].Outcome != events.Delivered || !res[0].TLS {
		t.Fatalf("result %+v", res[0])
	}
	if m := s.Messages(); len(m) != 1 || m[0].User != "relay" || !m[0].TLS {
		t.Fatalf("smarthost got %+v", m)
	}
	cfg.RouteSettings["*"] = Route{Addr: s.Addr, TLS: TLSImplicit, Username: "relay", Password: "wrong"}
	res = DeliverNow(ctx, cfg, "app@sender.test", []string{"x@example.test"}, []byte(testMsg))
	if res[0].Outcome != events.Deferred || res[0].Code != 535 {
		t.Fatalf("wrong password: %+v", res[0])
	}
	if _, err := New(Config{RouteSettings: map[string]Route{"*": {Addr: "x:1", TLS: "maybe"}}}, &queue.Queue{}); err == nil {
		t.Fatal("bad tls policy accepted")
	}
}

const childEnv = "RELAYCTL_DELIVERY_TEST_CHILD"

// TestKill9MidDelivery runs the engine in a child process (this test
// binary), kills it with SIGKILL while a message is in DATA, and checks
// that a new engine on the same spool delivers every message.
func TestKill9MidDelivery(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		kill9Child(t)
		return
	}
	release := make(chan struct{})
	var first sync.Once
	s := startSink(t, sinkOpts{decide: func(cmd, arg string, n int) error {
		if cmd != "DATA" {
			return nil
		}
		held := false
		first.Do(func() { held = true })
		if held {
			select { // the relay dies here; the message must not count
			case <-release:
			case <-time.After(10 * time.Second):
			}
			return smtptest.Reply(451, [3]int{4, 3, 0}, "client went away")
		}
		return nil
	}})
	dir := t.TempDir()
	q, err := queue.Open(dir, queue.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for i := 0; i < 8; i++ {
		rcpt := fmt.Sprintf("r%d@example.test", i)
		want[rcpt] = true
		if _, err := q.Enqueue(&queue.Envelope{From: "app@sender.test", Recipients: []queue.Recipient{{Address: rcpt}}}, strings.NewReader(testMsg)); err != nil {
			t.Fatal(err)
		}
	}
	q.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9MidDelivery$")
	cmd.Env = append(os.Environ(), childEnv+"=1", "RELAYCTL_SPOOL="+dir, "RELAYCTL_SINK="+s.Addr)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	waitFor(t, "a DATA in flight in the child", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		n := 0
		for k, v := range s.seen {
			if strings.HasPrefix(k, "DATA ") {
				n += v
			}
		}
		return n >= 1
	})
	cmd.Process.Kill() // SIGKILL
	cmd.Wait()
	killed = true
	close(release)
	before := len(s.messages())

	q2, err := queue.Open(dir, queue.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer q2.Close()
	e, err := New(Config{Hostname: "relay.test", Routes: map[string]string{"*": s.Addr}, DialTimeout: time.Second, CommandTimeout: 5 * time.Second}, q2)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); e.Run(ctx) }()
	waitFor(t, "the queue to drain after restart", func() bool { return q2.Len() == 0 })
	cancel()
	<-done
	got := map[string]int{}
	for _, m := range s.messages() {
		for _, r := range m.To {
			got[r]++
		}
	}
	for r := range want {
		if got[r] == 0 {
			t.Errorf("%s never delivered", r)
		}
	}
	t.Logf("%d delivered before SIGKILL, %d after restart", before, len(s.messages())-before)
}

func kill9Child(t *testing.T) {
	q, err := queue.Open(os.Getenv("RELAYCTL_SPOOL"), queue.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{Hostname: "relay.test", Routes: map[string]string{"*": os.Getenv("RELAYCTL_SINK")},
		Concurrency: 2, DialTimeout: time.Second, CommandTimeout: 20 * time.Second}, q)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e.Run(ctx) // killed long before
}

// RFC 5321 §5.1: when we are an MX of the domain only more preferred hosts
// are tried; when we are the best, the mail would loop and bounces.
func TestSelfMX(t *testing.T) {
	port := freePort(t)
	mx1 := startSink(t, sinkOpts{ip: "127.0.0.2", port: port})
	l := newLab(t, labZone, port)
	l.cfg.Hostname = "mx2.example.test" // we are the backup MX
	res := DeliverNow(context.Background(), l.cfg, "a@sender.test", []string{"x@example.test"}, []byte(testMsg))
	if res[0].Outcome != events.Delivered || res[0].Host != "mx1.example.test" || len(mx1.messages()) != 1 {
		t.Fatalf("backup MX: %+v", res[0])
	}
	l.cfg.Hostname = "mx1.example.test" // we are the best MX
	res = DeliverNow(context.Background(), l.cfg, "a@sender.test", []string{"x@example.test"}, []byte(testMsg))
	if res[0].Outcome != events.Bounced || res[0].Enhanced != "5.4.6" {
		t.Fatalf("best MX: %+v", res[0])
	}
}

// RFC 1870: a message over the receiver's advertised SIZE bounces without
// being sent.
func TestSizeLimit(t *testing.T) {
	s := startSink(t, sinkOpts{maxBytes: 10})
	cfg := Config{Hostname: "relay.test", Routes: map[string]string{"*": s.Addr}, DialTimeout: time.Second, CommandTimeout: 5 * time.Second}
	res := DeliverNow(context.Background(), cfg, "a@b.test", []string{"x@y.test"}, []byte(testMsg))
	if res[0].Outcome != events.Bounced || res[0].Enhanced != "5.3.4" || len(s.messages()) != 0 {
		t.Fatalf("result %+v", res[0])
	}
}

// Held recipients are not tried; RetryNow makes deferred ones due at once.
func TestHeldAndRetryNow(t *testing.T) {
	port := freePort(t)
	mx := startSink(t, sinkOpts{ip: "127.0.0.2", port: port})
	l := newLab(t, labZone, port)
	later := time.Now().Add(time.Hour)
	id := l.enqueueEnv(&queue.Envelope{From: "app@sender.test", Recipients: []queue.Recipient{
		{Address: "held@example.test", State: queue.StateHeld},
		{Address: "deferred@example.test", State: queue.StateDeferred, NextAttempt: later, Attempts: 1},
	}})
	e, err := New(l.cfg, l.q)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); e.Run(ctx) }()
	defer func() { cancel(); <-done }()
	time.Sleep(100 * time.Millisecond)
	if n := len(mx.messages()); n != 0 {
		t.Fatalf("%d messages before RetryNow", n)
	}
	e.RetryNow(id)
	waitFor(t, "delivery after RetryNow", func() bool { return len(mx.messages()) == 1 })
	if m := mx.messages()[0]; len(m.To) != 1 || m.To[0] != "deferred@example.test" {
		t.Fatalf("delivered %+v", m)
	}
	waitFor(t, "the held recipient to remain alone", func() bool {
		env, err := l.q.Get(id)
		return err == nil && env.Recipients[1].State == queue.StateDelivered && env.Recipients[0].State == queue.StateHeld
	})
}
