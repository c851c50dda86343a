package dnsclient_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/relayctl/relayctl/pkg/dnsclient"
	"github.com/relayctl/relayctl/pkg/dnstest"
)

const zone = `
$ORIGIN example.test.
@        TXT  "v=spf1 -all"
www      A    192.0.2.1
alias    CNAME www
a.b.c    A    192.0.2.2
*.wild   TXT  "wildcard"
big      TXT  "` + "%s" + `"
`

func newClient(t *testing.T, srv *dnstest.Server, opts ...dnsclient.Option) *dnsclient.Client {
	t.Helper()
	c, err := dnsclient.New([]string{srv.Addr()}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestOutcomes(t *testing.T) {
	big := strings.Repeat("x", 250)
	z := strings.Replace(zone, "%s", big+`" "`+big+`" "`+big+`" "`+big+`" "`+big+`" "`+big, 1)
	srv := dnstest.Start(t, z)
	srv.Set("fail.example.test", 0, dnstest.ServFail)
	srv.Set("refused.example.test", 0, dnstest.Refused)
	srv.Set("slow.example.test", 0, dnstest.Timeout)
	rec := &dnsclient.Recorder{}
	c := newClient(t, srv, dnsclient.WithTimeout(200*time.Millisecond), dnsclient.WithHook(rec.Hook))
	ctx := context.Background()

	cases := []struct {
		name    string
		qtype   uint16
		outcome dnsclient.Outcome
		err     error
	}{
		{"example.test", dns.TypeTXT, dnsclient.OutcomeAnswer, nil},
		{"example.test", dns.TypeA, dnsclient.OutcomeNoData, nil},
		{"b.c.example.test", dns.TypeA, dnsclient.OutcomeNoData, nil}, // empty non-terminal
		{"nope.example.test", dns.TypeA, dnsclient.OutcomeNXDomain, nil},
		{"alias.example.test", dns.TypeA, dnsclient.OutcomeAnswer, nil},
		{"x.wild.example.test", dns.TypeTXT, dnsclient.OutcomeAnswer, nil},
		{"big.example.test", dns.TypeTXT, dnsclient.OutcomeAnswer, nil},
		{"fail.example.test", dns.TypeA, dnsclient.OutcomeServFail, dnsclient.ErrServFail},
		{"refused.example.test", dns.TypeA, dnsclient.OutcomeServFail, dnsclient.ErrServFail},
		{"slow.example.test", dns.TypeA, dnsclient.OutcomeTimeout, dnsclient.ErrTimeout},
	}
	for _, tc := range cases {
		resp, err := c.Exchange(ctx, tc.name, tc.qtype)
		if tc.err != nil {
			var qe *dnsclient.QueryError
			if !errors.Is(err, tc.err) || !errors.As(err, &qe) || qe.Outcome != tc.outcome {
				t.Errorf("%s: err = %v, want %v", tc.name, err, tc.err)
			} else if !strings.Contains(err.Error(), srv.Addr()) {
				t.Errorf("%s: error %q does not name the server", tc.name, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if resp.Outcome != tc.outcome {
			t.Errorf("%s %s: outcome %v, want %v", tc.name, dns.TypeToString[tc.qtype], resp.Outcome, tc.outcome)
		}
	}
	txt, _, err := dnsclient.LookupTXT(ctx, c, "big.example.test")
	if err != nil || len(txt) != 1 || len(txt[0]) != 1500 {
		t.Errorf("big TXT over TCP: %d records, err %v", len(txt), err)
	}
	var sawTCP bool
	for _, q := range rec.Queries() {
		sawTCP = sawTCP || q.TCP
	}
	if !sawTCP {
		t.Error("truncated answer was not retried over TCP")
	}
	ips, _, err := dnsclient.LookupIP(ctx, c, "alias.example.test", dns.TypeA)
	if err != nil || len(ips) != 1 || ips[0].String() != "192.0.2.1" {
		t.Errorf("CNAME chase: %v %v", ips, err)
	}
	// one retry on timeout: the server saw two queries for slow.
	n := 0
	for _, l := range srv.Log() {
		if strings.HasPrefix(l, "slow.example.test.") {
			n++
		}
	}
	if n != 2 {
		t.Errorf("timeout retried %d times, want 2 queries", n)
	}
}

func TestUnreachable(t *testing.T) {
	c, err := dnsclient.New([]string{"127.0.0.1:1"}, dnsclient.WithTimeout(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Exchange(context.Background(), "example.test", dns.TypeA)
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("err = %v, want one naming the server", err)
	}
}

func TestNormalizeServer(t *testing.T) {
	for in, want := range map[string]string{"127.0.0.1": "127.0.0.1:53", "127.0.0.1:5353": "127.0.0.1:5353", "::1": "[::1]:53", "[::1]:54": "[::1]:54"} {
		got, err := dnsclient.NormalizeServer(in)
		if err != nil || got != want {
			t.Errorf("%s: %s %v, want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "1.2.3.4:notaport", ":53"} {
		if _, err := dnsclient.NormalizeServer(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TXT strings come back as the zone published them, not in miekg/dns's
// escaped presentation form: quotes, backslashes and 8-bit bytes included.
func TestLookupTXTUnescapes(t *testing.T) {
	srv := dnstest.Start(t, `esc.example.test. 300 IN TXT "a\"b" "c\\d" "\195\175" "x;y"`)
	c, err := dnsclient.New([]string{srv.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	txt, _, err := dnsclient.LookupTXT(context.Background(), c, "esc.example.test")
	if err != nil || len(txt) != 1 {
		t.Fatalf("got %q, %v", txt, err)
	}
	if want := "a\"bc\\d\xc3\xafx;y"; txt[0] != want {
		t.Errorf("TXT = %q, want %q", txt[0], want)
	}
}

func TestUnescapeTXT(t *testing.T) {
	for in, want := range map[string]string{
		`plain`: "plain", `\"q\"`: `"q"`, `\\`: `\`, `\065B`: "AB", `\999`: "999", `end\`: `end\`,
	} {
		if got := dnsclient.UnescapeTXT(in); got != want {
			t.Errorf("UnescapeTXT(%q) = %q, want %q", in, got, want)
		}
	}
}

// Pooled UDP sockets: concurrent and sequential queries each get their
// own answer, a socket that timed out is not reused, and Close leaves the
// client usable.
func TestSocketReuse(t *testing.T) {
	srv := dnstest.Start(t, zone)
	c := newClient(t, srv, dnsclient.WithTimeout(time.Second), dnsclient.WithRetries(0))
	defer c.Close()
	names := []string{"www.example.test", "a.b.c.example.test", "alias.example.test"}
	done := make(chan error, 100)
	for i := range 100 {
		go func() {
			name := names[i%len(names)]
			resp, err := c.Exchange(context.Background(), name, dns.TypeA)
			if err == nil && !strings.EqualFold(resp.Name, name+".") {
				err = errors.New("answer for " + resp.Name + " to a query for " + name)
			}
			done <- err
		}()
	}
	for range 100 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	srv.Set("slow.example.test", 0, dnstest.Timeout)
	if _, err := c.Exchange(context.Background(), "slow.example.test", dns.TypeA); !errors.Is(err, dnsclient.ErrTimeout) {
		t.Fatalf("want timeout, got %v", err)
	}
	c.Close()
	for range 100 {
		resp, err := c.Exchange(context.Background(), "www.example.test", dns.TypeA)
		if err != nil || len(resp.Records()) != 1 || resp.Records()[0].(*dns.A).A.String() != "192.0.2.1" {
			t.Fatalf("%v %v", resp, err)
		}
	}
}

// BenchmarkExchange measures one query to the loopback test server (no
// delay): mostly the client's and server's CPU per query.
//
//	go test ./pkg/dnsclient -run '^$' -bench Exchange -benchtime 2000x
func BenchmarkExchange(b *testing.B) {
	srv := dnstest.Start(b, zone)
	c, err := dnsclient.New([]string{srv.Addr()})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for b.Loop() {
		if _, err := c.Exchange(context.Background(), "www.example.test", dns.TypeA); err != nil {
			b.Fatal(err)
		}
	}
}
