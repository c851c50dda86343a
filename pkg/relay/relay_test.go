package relay

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/relayctl/relayctl/pkg/delivery"
	"github.com/relayctl/relayctl/pkg/dkim"
	"github.com/relayctl/relayctl/pkg/dnsclient"
	"github.com/relayctl/relayctl/pkg/dnstest"
	"github.com/relayctl/relayctl/pkg/events"
	"github.com/relayctl/relayctl/pkg/postfixtest"
	"github.com/relayctl/relayctl/pkg/smtpd"
	"github.com/relayctl/relayctl/pkg/smtptest"
)

// lab is a relay between a test DNS server and a receiving MX on loopback.
type lab struct {
	relay   *Relay
	addr    string // the relay's SMTP listener
	mx      *smtptest.Server
	dns     *dnstest.Server
	res     *dnsclient.Client
	logPath string
	cancel  context.CancelFunc
	done    chan error
}

const password = "s3cret-app-password"

func startLab(t *testing.T, mutate func(*Config)) *lab {
	t.Helper()
	mx := smtptest.Start(t, smtptest.Options{StartTLS: true})
	_, mxPort, _ := net.SplitHostPort(mx.Addr)
	port, _ := strconv.Atoi(mxPort)

	key, err := dkim.GenerateKey("ed25519", 0)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := dkim.NewRecord("s1", "example.com", key.Public())
	if err != nil {
		t.Fatal(err)
	}
	pemKey, err := dkim.MarshalPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "dkim.pem")
	if err := os.WriteFile(keyFile, pemKey, 0o600); err != nil {
		t.Fatal(err)
	}
	zone := `
dest.test.        IN MX 10 mx1.dest.test.
mx1.dest.test.    IN A  127.0.0.1
` + rec.ZoneLine + "\n"
	dns := dnstest.Start(t, zone)
	res, err := dnsclient.New([]string{dns.Addr()}, dnsclient.WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	hash, err := smtpd.HashPassword(password)
	if err != nil {
		t.Fatal(err)
	}
	nets, _ := ParseNetworks([]string{})
	pool := mx.RootCAs
	backoff := delivery.DefaultBackoff()
	backoff.Initial, backoff.Max, backoff.Jitter = 200*time.Millisecond, time.Second, 0
	cfg := Config{
		Hostname:  "relay.test",
		Spool:     filepath.Join(dir, "spool"),
		Listeners: []smtpd.Listener{{Addr: "127.0.0.1:0", Mode: smtpd.ModePlain}},
		SMTP: smtpd.Config{
			Users:           []smtpd.User{{Name: "app", PasswordHash: hash, AllowedSenders: []string{"example.com"}}},
			TrustedNetworks: nets,
		},
		DKIMKeys:    []DKIMKey{{Domain: "example.com", Selector: "s1", KeyFile: keyFile}},
		Delivery:    delivery.Config{Resolver: res, Port: port, RootCAs: pool, Backoff: backoff, DialTimeout: 2 * time.Second, CommandTimeout: 5 * time.Second},
		DeliveryLog: filepath.Join(dir, "delivery.jsonl"),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	r, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &lab{relay: r, addr: r.Addrs()[0].String(), mx: mx, dns: dns, res: res, logPath: cfg.DeliveryLog, cancel: cancel, done: make(chan error, 1)}
	go func() { l.done <- r.Run(ctx) }()
	t.Cleanup(func() { l.stop(t) })
	return l
}

func (l *lab) stop(t *testing.T) {
	t.Helper()
	if l.cancel == nil {
		return
	}
	l.cancel()
	l.cancel = nil
	select {
	case err := <-l.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("relay did not stop within 10s")
	}
}

func (l *lab) client(t *testing.T, auth bool) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(l.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("app.test"); err != nil {
		t.Fatal(err)
	}
	if auth {
		if err := c.Auth(sasl.NewPlainClient("", "app", password)); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// TestEndToEnd: an authenticated client submits; the relay signs,
// queues and delivers to the MX found through DNS, over STARTTLS; the
// delivery log records it; the message verifies with DKIM.
func TestEndToEnd(t *testing.T) {
	l := startLab(t, nil)
	msg := "From: Billing <billing@example.com>\r\nTo: user@dest.test\r\nSubject: Invoice 42\r\n\r\nPlease find your invoice.\r\n"
	if err := smtptest.Send(l.client(t, true), "billing@example.com", []string{"user@dest.test"}, msg); err != nil {
		t.Fatalf("submission: %v", err)
	}
	got := l.mx.Wait(t, 1, 15*time.Second)[0]
	if got.From != "billing@example.com" || len(got.To) != 1 || got.To[0] != "user@dest.test" {
		t.Errorf("MX got envelope %s → %v", got.From, got.To)
	}
	if !got.TLS {
		t.Error("delivery did not use the STARTTLS the MX offered")
	}
	data := string(got.Data)
	if !strings.Contains(data, "Received: from app.test ([127.0.0.1])\r\n\tby relay.test (relayctl) with ESMTPA") {
		t.Errorf("no Received field:\n%s", data)
	}
	vs, err := dkim.Verify(context.Background(), l.res, strings.NewReader(data))
	if err != nil || len(vs) != 1 || vs[0].Result != "pass" {
		t.Fatalf("DKIM at the MX: %+v, %v\n%s", vs, err, data)
	}

	// The delivery log has the attempt; the queue is empty again.
	deadline := time.Now().Add(5 * time.Second)
	var evs []events.Event
	for time.Now().Before(deadline) {
		evs = readLog(t, l.logPath)
		if len(evs) > 0 && l.relay.Queue.Len() == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(evs) != 1 || evs[0].Result != events.Delivered || evs[0].Recipient != "user@dest.test" || evs[0].Code != 250 || !evs[0].TLS {
		t.Errorf("delivery log: %+v", evs)
	}
	if n := l.relay.Queue.Len(); n != 0 {
		t.Errorf("%d messages still queued after delivery", n)
	}
}

func readLog(t *testing.T, path string) []events.Event {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []events.Event
	if err := events.Read(f, func(e events.Event) error { out = append(out, e); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestNotAnOpenRelay: without AUTH (and no trusted networks) nothing is
// accepted and nothing reaches the MX.
func TestNotAnOpenRelay(t *testing.T) {
	l := startLab(t, nil)
	c := l.client(t, false)
	err := smtptest.Send(c, "billing@example.com", []string{"user@dest.test"}, "From: billing@example.com\r\n\r\nx\r\n")
	var se *smtp.SMTPError
	if !asSMTP(err, &se) || se.Code != 530 {
		t.Fatalf("unauthenticated relay: %v, want 530", err)
	}
	if n := l.relay.Queue.Len(); n != 0 {
		t.Fatalf("queued %d", n)
	}
	// A sender domain the user may not use.
	err = smtptest.Send(l.client(t, true), "ceo@other.test", []string{"user@dest.test"}, "From: ceo@other.test\r\n\r\nx\r\n")
	if !asSMTP(err, &se) || se.Code != 553 {
		t.Fatalf("foreign sender: %v, want 553", err)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(l.mx.Messages()); n != 0 {
		t.Fatalf("MX received %d messages", n)
	}
}

func asSMTP(err error, se **smtp.SMTPError) bool {
	e, ok := err.(*smtp.SMTPError)
	if ok {
		*se = e
	}
	return ok
}

// TestQueuedMailSurvivesRestart: a message accepted while the MX refuses
// (4xx) stays in the spool across a stop and is delivered by the next
// relay on the same spool.
func TestQueuedMailSurvivesRestart(t *testing.T) {
	var spool string
	l := startLab(t, func(c *Config) { spool = c.Spool })
	l.mx.SetHook(func(cmd, arg string) error {
		if cmd == "RCPT" {
			return smtptest.Reply(451, [3]int{4, 7, 1}, "greylisted, try later")
		}
		return nil
	})
	msg := "From: billing@example.com\r\nTo: user@dest.test\r\nSubject: s\r\n\r\nx\r\n"
	if err := smtptest.Send(l.client(t, true), "billing@example.com", []string{"user@dest.test"}, msg); err != nil {
		t.Fatal(err)
	}
	// Wait for the deferral to be logged, then stop the relay.
	deadline := time.Now().Add(10 * time.Second)
	for len(readLog(t, l.logPath)) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	l.stop(t)
	if evs := readLog(t, l.logPath); len(evs) == 0 || evs[0].Result != events.Deferred {
		t.Fatalf("first attempt: %+v", evs)
	}

	l.mx.SetHook(nil)
	_, mxPort, _ := net.SplitHostPort(l.mx.Addr)
	port, _ := strconv.Atoi(mxPort)
	startLab(t, func(c *Config) {
		c.Spool = spool
		c.Delivery.Port, c.Delivery.Resolver, c.Delivery.RootCAs = port, l.res, l.mx.RootCAs
	})
	got := l.mx.Wait(t, 1, 15*time.Second)
	if len(got) != 1 {
		t.Fatalf("after restart the MX got %d messages", len(got))
	}
}

// TestConfigFromListenersFailFast: bad listener settings fail in New.
func TestNewRejectsBadListeners(t *testing.T) {
	dir := t.TempDir()
	hash, _ := smtpd.HashPassword("x")
	base := func() Config {
		return Config{
			Hostname: "relay.test", Spool: filepath.Join(dir, "spool"),
			Delivery: delivery.Config{Resolver: mustResolver(t)},
			SMTP:     smtpd.Config{Users: []smtpd.User{{Name: "a", PasswordHash: hash}}},
		}
	}
	cases := map[string]func(*Config){
		"tls without cert": func(c *Config) { c.Listeners = []smtpd.Listener{{Addr: "127.0.0.1:0", Mode: "tls"}} },
		"missing cert file": func(c *Config) {
			c.Listeners = []smtpd.Listener{{Addr: "127.0.0.1:0", Mode: "starttls", CertFile: "/nonexistent", KeyFile: "/nonexistent"}}
		},
		"unknown mode":      func(c *Config) { c.Listeners = []smtpd.Listener{{Addr: "127.0.0.1:0", Mode: "smtps"}} },
		"auth in cleartext": func(c *Config) { c.Listeners = []smtpd.Listener{{Addr: "0.0.0.0:0", Mode: "plain"}} },
		"address in use":    func(c *Config) { c.Listeners = []smtpd.Listener{{Addr: busyAddr(t), Mode: "plain"}} },
		"cert on plain": func(c *Config) {
			c.Listeners = []smtpd.Listener{{Addr: "127.0.0.1:0", Mode: "plain", CertFile: "a", KeyFile: "b"}}
		},
		"missing dkim key": func(c *Config) {
			c.DKIMKeys = []DKIMKey{{Domain: "example.com", Selector: "s", KeyFile: "/nonexistent"}}
		},
	}
	for name, mut := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := base()
			mut(&cfg)
			r, err := New(cfg, nil)
			if err == nil {
				r.closeAll()
				t.Fatal("accepted")
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
	// With insecure_auth the cleartext listener is allowed.
	cfg := base()
	cfg.SMTP.InsecureAuth = true
	cfg.Listeners = []smtpd.Listener{{Addr: "0.0.0.0:0", Mode: "plain"}}
	r, err := New(cfg, nil)
	if err != nil {
		t.Fatalf("insecure_auth: %v", err)
	}
	r.closeAll()
}

func mustResolver(t *testing.T) *dnsclient.Client {
	c, err := dnsclient.New([]string{"127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func busyAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().String()
}

// TestMixedRecipientsThroughTheRelay: one submitted message with a
// recipient the MX accepts, one it greylists once, one it refuses (5xx)
// and one at a null-MX domain. The first two are delivered (the second
// on retry), and a DSN from <> reaches the sender's MX for the other two.
func TestMixedRecipientsThroughTheRelay(t *testing.T) {
	l := startLab(t, nil)
	l.dns.AddZone("example.com. IN MX 10 mx1.dest.test.\nnullmx.test. IN MX 0 .\n")
	var (
		mu     sync.Mutex
		greyed bool
	)
	l.mx.SetHook(func(cmd, arg string) error {
		if cmd != "RCPT" {
			return nil
		}
		switch arg {
		case "bad@dest.test":
			return smtptest.Reply(550, [3]int{5, 1, 1}, "no such user")
		case "later@dest.test":
			mu.Lock()
			defer mu.Unlock()
			if !greyed {
				greyed = true
				return smtptest.Reply(451, [3]int{4, 7, 1}, "greylisted")
			}
		}
		return nil
	})
	rcpts := []string{"ok@dest.test", "later@dest.test", "bad@dest.test", "x@nullmx.test"}
	msg := "From: billing@example.com\r\nTo: ok@dest.test\r\nSubject: mixed\r\n\r\nhello\r\n"
	if err := smtptest.Send(l.client(t, true), "billing@example.com", rcpts, msg); err != nil {
		t.Fatal(err)
	}
	delivered := map[string]bool{}
	var dsns []smtptest.Message
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		delivered, dsns = map[string]bool{}, nil
		for _, m := range l.mx.Messages() {
			if m.From == "" {
				dsns = append(dsns, m)
				continue
			}
			for _, r := range m.To {
				delivered[r] = true
			}
		}
		if delivered["ok@dest.test"] && delivered["later@dest.test"] && dsnCovers(dsns, "bad@dest.test", "x@nullmx.test") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !delivered["ok@dest.test"] || !delivered["later@dest.test"] || delivered["bad@dest.test"] {
		t.Errorf("delivered %v", delivered)
	}
	if !dsnCovers(dsns, "bad@dest.test", "x@nullmx.test") {
		t.Fatalf("no DSN to the sender for the bounced recipients; DSNs: %d", len(dsns))
	}
	for _, d := range dsns {
		if len(d.To) != 1 || d.To[0] != "billing@example.com" || !strings.Contains(string(d.Data), "multipart/report") {
			t.Errorf("DSN %v:\n%s", d.To, d.Data)
		}
	}
	// The event is logged after the MX answered: poll the log too.
	wants := []string{"ok@dest.test delivered", "later@dest.test deferred", "later@dest.test delivered", "bad@dest.test bounced", "x@nullmx.test bounced"}
	var missing []string
	for {
		results := map[string]bool{}
		for _, e := range readLog(t, l.logPath) {
			if e.Sender == "billing@example.com" {
				results[e.Recipient+" "+string(e.Result)] = true
			}
		}
		missing = missing[:0]
		for _, w := range wants {
			if !results[w] {
				missing = append(missing, w)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(missing) > 0 {
		t.Errorf("delivery log lacks %q", missing)
	}
}

func dsnCovers(dsns []smtptest.Message, rcpts ...string) bool {
	for _, r := range rcpts {
		found := false
		for _, d := range dsns {
			if strings.Contains(string(d.Data), r) {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// TestSMTPSourceInterop: Postfix's load generator as the client, several
// sessions at once; every message reaches the MX.
func TestSMTPSourceInterop(t *testing.T) {
	src := postfixtest.Tool(t, "smtp-source")
	nets, _ := ParseNetworks([]string{"127.0.0.0/8"})
	l := startLab(t, func(c *Config) { c.SMTP.TrustedNetworks = nets })
	out, err := exec.Command(src, "-s", "5", "-m", "20", "-l", "1000", "-f", "app@example.com", "-t", "user@dest.test", "-M", "loadgen.test", l.addr).CombinedOutput()
	if err != nil {
		t.Fatalf("smtp-source: %v\n%s", err, out)
	}
	l.mx.Wait(t, 20, 20*time.Second)
}
