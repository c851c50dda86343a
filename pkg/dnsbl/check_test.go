package dnsbl

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/relayctl/relayctl/pkg/dnsclient"
	"github.com/relayctl/relayctl/pkg/dnstest"
)

// lists emulates the default lists and a few more: listings with TXT
// reasons, refusals, a hijacking resolver, and the RFC 5782 test points.
const lists = `
; Spamhaus ZEN: RFC 5782 test point, SBL with reason, PBL, CSS+XBL, refusal
2.0.0.127.zen.spamhaus.org.   A   127.0.0.2
2.0.0.127.zen.spamhaus.org.   TXT "https://www.spamhaus.org/sbl/query/SBL2"
2.0.0.127.zen.spamhaus.org.   A   127.0.0.10
10.2.0.192.zen.spamhaus.org.  A   127.0.0.11
11.2.0.192.zen.spamhaus.org.  A   127.0.0.3
11.2.0.192.zen.spamhaus.org.  A   127.0.0.4
11.2.0.192.zen.spamhaus.org.  TXT "https://check.spamhaus.org/listed/?searchterm=192.0.2.11"
99.2.0.192.zen.spamhaus.org.  A   127.255.255.254
99.2.0.192.zen.spamhaus.org.  TXT "Error: open resolver; https://www.spamhaus.org/returnc/pub/"
1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen.spamhaus.org. A 127.0.0.2
f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen.spamhaus.org. A 127.0.0.4
2.0.0.0.0.0.f.7.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.zen.spamhaus.org. A 127.0.0.2
; Barracuda
2.0.0.127.b.barracudacentral.org. A 127.0.0.2
2.0.0.127.b.barracudacentral.org. TXT "Client host blocked using Barracuda Reputation"
20.2.0.192.b.barracudacentral.org. A 127.0.0.2
; SpamCop answers through a hijacking resolver for one name
2.0.0.127.bl.spamcop.net.    A   127.0.0.2
30.2.0.192.bl.spamcop.net.   A   198.51.100.7
; Spamhaus DBL, URIBL
dbltest.com.dbl.spamhaus.org.         A 127.0.1.2
spammy.example.dbl.spamhaus.org.      A 127.0.1.2
spammy.example.dbl.spamhaus.org.      TXT "https://www.spamhaus.org/query/domain/spammy.example"
test.uribl.com.multi.uribl.com.       A 127.0.0.14
spammy.example.multi.uribl.com.       A 127.0.0.2
blocked.example.multi.uribl.com.      A 127.0.0.1
blocked.example.multi.uribl.com.      TXT "127.0.0.1 -> Query Refused. See https://uribl.com/refused.shtml"
; a dead list (NXDOMAIN for everything) and one listing everything
*.everything.example.  A 127.0.0.2
; domains
spammy.example.        MX 10 mx.spammy.example.
mx.spammy.example.     A  192.0.2.20
mx.spammy.example.     AAAA 2001:db8::1
clean.example.         MX 10 mx1.clean.example.
clean.example.         MX 20 mx2.clean.example.
mx1.clean.example.     A 192.0.2.50
mx2.clean.example.     A 192.0.2.50
mx2.clean.example.     A 192.0.2.51
nomx.example.          A 192.0.2.60
nullmx.example.        MX 0 .
`

func checker(t testing.TB, srv *dnstest.Server, zones ...string) *Checker {
	t.Helper()
	r, err := dnsclient.New([]string{srv.Addr()}, dnsclient.WithTimeout(300*time.Millisecond), dnsclient.WithRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	zs := Defaults()
	if len(zones) > 0 {
		if zs, err = ParseZones(zones); err != nil {
			t.Fatal(err)
		}
	}
	return &Checker{Resolver: r, Zones: zs}
}

func targetsOf(t testing.TB, in ...string) []Target {
	t.Helper()
	var ts []Target
	for _, s := range in {
		tg, err := ParseTarget(s, false)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, tg)
	}
	return ts
}

func find(t *testing.T, res *Result, target, zone string) Query {
	t.Helper()
	for _, q := range res.Queries {
		if q.Target == target && q.Zone == zone {
			return q
		}
	}
	t.Fatalf("no query for %s on %s in %+v", target, zone, res.Queries)
	return Query{}
}

func TestCheckListedWithReason(t *testing.T) {
	srv := dnstest.Start(t, lists)
	res := checker(t, srv).Check(context.Background(), targetsOf(t, "127.0.0.2"))
	if len(res.Queries) != 3 { // the three IP lists, not the domain lists
		t.Fatalf("queries %+v", res.Queries)
	}
	zen := find(t, res, "127.0.0.2", "zen.spamhaus.org")
	if !zen.Listed || strings.Join(zen.Lists, ",") != "SBL,PBL" || zen.Reason != "https://www.spamhaus.org/sbl/query/SBL2" ||
		strings.Join(zen.Codes, ",") != "127.0.0.2,127.0.0.10" || zen.Name != "2.0.0.127.zen.spamhaus.org" {
		t.Errorf("zen %+v", zen)
	}
	brbl := find(t, res, "127.0.0.2", "b.barracudacentral.org")
	if !brbl.Listed || brbl.Reason != "Client host blocked using Barracuda Reputation" {
		t.Errorf("barracuda %+v", brbl)
	}
	if s := res.Summary; s.Listed != 3 || s.Errors != 0 || s.Queries != 3 {
		t.Errorf("summary %+v", s)
	}
}

func TestCheckErrorsAreNotListings(t *testing.T) {
	srv := dnstest.Start(t, lists)
	srv.Set("40.2.0.192.bl.spamcop.net", 0, dnstest.ServFail)
	res := checker(t, srv).Check(context.Background(), targetsOf(t, "192.0.2.99", "192.0.2.30", "192.0.2.40", "192.0.2.10", "192.0.2.11"))

	refused := find(t, res, "192.0.2.99", "zen.spamhaus.org")
	if refused.Listed || refused.Kind != KindRefused || !errors.Is(refused.Err, ErrRefused) ||
		!strings.Contains(refused.Error, "use your own resolver or a Spamhaus DQS key") || !strings.Contains(refused.Reason, "open resolver") {
		t.Errorf("refusal %+v", refused)
	}
	hijack := find(t, res, "192.0.2.30", "bl.spamcop.net")
	if hijack.Listed || hijack.Kind != KindBadAnswer || !strings.Contains(hijack.Error, "outside 127.0.0.0/8") {
		t.Errorf("hijack %+v", hijack)
	}
	sf := find(t, res, "192.0.2.40", "bl.spamcop.net")
	if sf.Listed || sf.Kind != KindServFail {
		t.Errorf("servfail %+v", sf)
	}
	pbl := find(t, res, "192.0.2.10", "zen.spamhaus.org")
	if !pbl.Listed || !strings.Contains(pbl.Meaning, "not a spam listing") {
		t.Errorf("pbl %+v", pbl)
	}
	css := find(t, res, "192.0.2.11", "zen.spamhaus.org")
	if !css.Listed || strings.Join(css.Lists, ",") != "CSS,XBL" {
		t.Errorf("css %+v", css)
	}
	if find(t, res, "192.0.2.40", "zen.spamhaus.org").Status() != "clean" {
		t.Error("a SERVFAIL on one list changed another's answer")
	}
}

// A list that never answers costs its own queries, not the others'.
func TestCheckTimeoutHidesNothing(t *testing.T) {
	srv := dnstest.Start(t, lists)
	srv.Set("2.0.0.127.bl.spamcop.net", 0, dnstest.Timeout)
	start := time.Now()
	res := checker(t, srv).Check(context.Background(), targetsOf(t, "127.0.0.2"))
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
	if q := find(t, res, "127.0.0.2", "bl.spamcop.net"); q.Kind != KindTimeout || q.Listed {
		t.Errorf("spamcop %+v", q)
	}
	if !find(t, res, "127.0.0.2", "zen.spamhaus.org").Listed || !find(t, res, "127.0.0.2", "b.barracudacentral.org").Listed {
		t.Error("the timeout hid another list's listing")
	}
}

func TestCheckIPv6(t *testing.T) {
	srv := dnstest.Start(t, lists)
	res := checker(t, srv).Check(context.Background(), targetsOf(t, "2001:db8::1", "2001:db8::ffff"))
	if len(res.Queries) != 2 { // only ZEN answers IPv6 queries
		t.Fatalf("%+v", res.Queries)
	}
	if q := find(t, res, "2001:db8::1", "zen.spamhaus.org"); !q.Listed || q.Lists[0] != "SBL" {
		t.Errorf("%+v", q)
	}
	if q := find(t, res, "2001:db8::ffff", "zen.spamhaus.org"); !q.Listed || q.Lists[0] != "XBL" {
		t.Errorf("%+v", q)
	}
}

func TestCheckCIDR(t *testing.T) {
	srv := dnstest.Start(t, lists)
	res := checker(t, srv, "zen.spamhaus.org").Check(context.Background(), targetsOf(t, "192.0.2.8/29", "192.0.2.10"))
	if len(res.Queries) != 8 { // 192.0.2.10 is asked once
		t.Fatalf("%d queries", len(res.Queries))
	}
	if res.Targets[0].Kind != "range" || res.Targets[0].Addresses != 8 || res.Summary.Listed != 2 || res.Summary.Clean != 6 {
		t.Errorf("%+v %+v", res.Targets[0], res.Summary)
	}
	if res.Queries[0].Target != "192.0.2.8" || res.Queries[7].Target != "192.0.2.15" {
		t.Errorf("order %s…%s", res.Queries[0].Target, res.Queries[7].Target)
	}
}

func TestCheckDomain(t *testing.T) {
	srv := dnstest.Start(t, lists)
	res := checker(t, srv).Check(context.Background(), targetsOf(t, "spammy.example", "clean.example", "nomx.example", "nullmx.example", "blocked.example"))

	if q := find(t, res, "spammy.example", "dbl.spamhaus.org"); !q.Listed || !strings.Contains(q.Reason, "spammy.example") {
		t.Errorf("dbl %+v", q)
	}
	if q := find(t, res, "spammy.example", "multi.uribl.com"); !q.Listed || q.Lists[0] != "black" {
		t.Errorf("uribl %+v", q)
	}
	if q := find(t, res, "blocked.example", "multi.uribl.com"); q.Listed || q.Kind != KindRefused || !strings.Contains(q.Reason, "Query Refused") {
		t.Errorf("uribl refusal %+v", q)
	}
	q := find(t, res, "192.0.2.20", "b.barracudacentral.org")
	if !q.Listed || len(q.From) != 1 || q.From[0] != "spammy.example MX mx.spammy.example" {
		t.Errorf("MX address %+v", q)
	}
	if q := find(t, res, "2001:db8::1", "zen.spamhaus.org"); !q.Listed || q.From[0] != "spammy.example MX mx.spammy.example" {
		t.Errorf("MX IPv6 address %+v", q)
	}
	// One address behind two MX hosts: one query per list, both sources.
	q = find(t, res, "192.0.2.50", "zen.spamhaus.org")
	if strings.Join(q.From, "|") != "clean.example MX mx1.clean.example|clean.example MX mx2.clean.example" &&
		strings.Join(q.From, "|") != "clean.example MX mx2.clean.example|clean.example MX mx1.clean.example" {
		t.Errorf("sources %v", q.From)
	}
	n := 0
	for _, q := range res.Queries {
		if q.Target == "192.0.2.50" {
			n++
		}
	}
	if n != 3 {
		t.Errorf("192.0.2.50 asked %d times", n)
	}
	if q := find(t, res, "192.0.2.60", "zen.spamhaus.org"); !strings.Contains(q.From[0], "implicit MX") {
		t.Errorf("implicit MX %+v", q)
	}
	var nullmx TargetInfo
	for _, ti := range res.Targets {
		if ti.Target == "nullmx.example" {
			nullmx = ti
		}
	}
	if len(nullmx.IPs) != 0 || len(nullmx.Notes) == 0 || !strings.Contains(nullmx.Notes[0], "null MX") {
		t.Errorf("null MX %+v", nullmx)
	}
}

func TestCheckDomainDiscoveryFailure(t *testing.T) {
	srv := dnstest.Start(t, lists)
	srv.Set("clean.example", dns.TypeMX, dnstest.ServFail)
	res := checker(t, srv).Check(context.Background(), targetsOf(t, "clean.example"))
	if !res.Targets[0].Incomplete() || len(res.Targets[0].Errors) != 1 || !strings.Contains(res.Targets[0].Errors[0], "SERVFAIL") {
		t.Errorf("%+v", res.Targets[0])
	}
	if len(res.Queries) != 2 { // the domain lists are still asked
		t.Errorf("%+v", res.Queries)
	}
}

// countingResolver records the most queries in flight at once.
type countingResolver struct {
	r        dnsclient.Resolver
	cur, max atomic.Int64
}

func (c *countingResolver) Exchange(ctx context.Context, name string, qtype uint16) (*dnsclient.Response, error) {
	n := c.cur.Add(1)
	for {
		m := c.max.Load()
		if n <= m || c.max.CompareAndSwap(m, n) {
			break
		}
	}
	defer c.cur.Add(-1)
	return c.r.Exchange(ctx, name, qtype)
}

func TestConcurrencyBound(t *testing.T) {
	srv := dnstest.Start(t, lists)
	srv.SetDelay(5 * time.Millisecond)
	c := checker(t, srv)
	cr := &countingResolver{r: c.Resolver}
	c.Resolver, c.Concurrency = cr, 8
	var calls atomic.Int64
	c.Progress = func(done, total int) {
		calls.Add(1)
		if total != 3*64+2+1 || done > total { // 192.0.2.20 (MX) is in the range; 2001:db8::1 only on ZEN
			t.Errorf("progress %d/%d", done, total)
		}
	}
	res := c.Check(context.Background(), targetsOf(t, "192.0.2.0/26", "spammy.example"))
	if m := cr.max.Load(); m > 8 || m < 2 {
		t.Errorf("max in flight %d, bound 8", m)
	}
	if int(calls.Load()) != len(res.Queries) || len(res.Queries) != 3*64+2+1 {
		t.Errorf("progress calls %d, queries %d", calls.Load(), len(res.Queries))
	}
}

// One IP against every list takes about one round trip, not one per list.
func TestOneRoundTrip(t *testing.T) {
	srv := dnstest.Start(t, lists)
	const delay = 200 * time.Millisecond
	srv.SetDelay(delay)
	c := checker(t, srv, "zen.spamhaus.org", "b.barracudacentral.org", "bl.spamcop.net", "dnsbl-1.uceprotect.net", "rbl.example.net")
	start := time.Now()
	res := c.Check(context.Background(), targetsOf(t, "192.0.2.77"))
	if d := time.Since(start); d >= 4*delay { // one list after the other would take 5×delay
		t.Errorf("5 lists took %v with %v per answer", d, delay)
	}
	if res.Summary.Clean != 5 {
		t.Errorf("%+v", res.Summary)
	}
}

func TestCheckDomainSPF(t *testing.T) {
	srv := dnstest.Start(t, lists+`
sender.example.      TXT "v=spf1 ip4:192.0.2.20 ip4:198.51.100.0/30 ip6:2001:db8::1/128 a a:out.sender.example/31 mx:relay.example ip4:203.0.113.0/16 include:_spf.provider.example exists:%{i}.x.sender.example -all"
sender.example.      A   192.0.2.70
sender.example.      MX  10 mx.sender.example.
mx.sender.example.   A   192.0.2.70
out.sender.example.  A   192.0.2.81
relay.example.       MX  5 smtp.relay.example.
smtp.relay.example.  A   192.0.2.90
redirected.example.  TXT "v=spf1 redirect=_spf.redirected.example"
_spf.redirected.example. TXT "v=spf1 ip4:192.0.2.100 -all"
broken.example.      TXT "v=spf1 ip4:300.1.1.1 -all"
`)
	res := checker(t, srv, "b.barracudacentral.org").Check(context.Background(), targetsOf(t, "sender.example", "redirected.example", "broken.example"))
	from := map[string][]string{}
	for _, q := range res.Queries {
		from[q.Target] = q.From
	}
	want := map[string]string{
		"192.0.2.20":   "sender.example SPF ip4:192.0.2.20",
		"198.51.100.3": "sender.example SPF ip4:198.51.100.0/30",
		"192.0.2.70":   "sender.example MX mx.sender.example|sender.example SPF a",
		"192.0.2.80":   "sender.example SPF a:out.sender.example/31",
		"192.0.2.81":   "sender.example SPF a:out.sender.example/31",
		"192.0.2.90":   "sender.example SPF mx:relay.example: smtp.relay.example",
		"203.0.0.0":    "sender.example SPF ip4:203.0.113.0/16",
		"192.0.2.100":  "redirected.example SPF (_spf.redirected.example) ip4:192.0.2.100",
	}
	for ip, w := range want {
		got := from[ip]
		slices.Sort(got)
		ws := strings.Split(w, "|")
		slices.Sort(ws)
		if !slices.Equal(got, ws) {
			t.Errorf("%s from %q, want %q", ip, got, ws)
		}
	}
	if _, ok := from["203.0.113.1"]; ok {
		t.Error("a /16 from SPF was expanded")
	}
	if _, ok := from["2001:db8::1"]; ok {
		t.Error("IPv6 asked of an IPv4-only list")
	}
	notes := strings.Join(res.Targets[0].Notes, "\n")
	for _, w := range []string{"ip4:203.0.113.0/16: 203.0.0.0/16 holds more than 256", "include:_spf.provider.example: not followed"} {
		if !strings.Contains(notes, w) {
			t.Errorf("notes lack %q:\n%s", w, notes)
		}
	}
	if notes := strings.Join(res.Targets[2].Notes, "\n"); !strings.Contains(notes, "not checked") {
		t.Errorf("broken record: %q", notes)
	}
	// The IPv6 address from ip6: is asked of ZEN.
	res = checker(t, srv, "zen.spamhaus.org").Check(context.Background(), targetsOf(t, "sender.example"))
	if q := find(t, res, "2001:db8::1", "zen.spamhaus.org"); !q.Listed || q.From[0] != "sender.example SPF ip6:2001:db8::1/128" {
		t.Errorf("%+v", q)
	}
}

// A host name is also asked under its registered domain, which URIBL
// and DBL list.
func TestCheckRegisteredDomain(t *testing.T) {
	srv := dnstest.Start(t, lists)
	res := checker(t, srv, "dbl.spamhaus.org", "multi.uribl.com").Check(context.Background(), targetsOf(t, "www.spammy.example", "spammy.example"))
	if len(res.Queries) != 4 {
		t.Fatalf("%+v", res.Queries)
	}
	if q := find(t, res, "www.spammy.example", "dbl.spamhaus.org"); q.Listed {
		t.Errorf("%+v", q)
	}
	q := find(t, res, "spammy.example", "multi.uribl.com")
	if !q.Listed || len(q.From) != 1 || q.From[0] != "registered domain of www.spammy.example" {
		t.Errorf("%+v", q)
	}
}

// A list that stops answering is given up after GiveUpAfter timeouts in
// a row; its other results say so, and the other lists answer as usual.
func TestGiveUpOnSilentList(t *testing.T) {
	srv := dnstest.Start(t, lists)
	tg := targetsOf(t, "192.0.2.64/27")[0]
	for _, a := range tg.Addrs() {
		srv.Set(QueryName("bl.spamcop.net", a), 0, dnstest.Timeout)
	}
	c := checker(t, srv, "bl.spamcop.net", "b.barracudacentral.org")
	c.Concurrency = 4
	start := time.Now()
	res := c.Check(context.Background(), []Target{tg})
	took := time.Since(start)
	asked := 0
	for _, l := range srv.Log() {
		if strings.HasSuffix(l, ".bl.spamcop.net. A") {
			asked++
		}
	}
	if asked >= 32 || asked < GiveUpAfter {
		t.Errorf("spamcop asked %d times", asked)
	}
	if took > 8*300*time.Millisecond { // 32 timeouts at 4 in flight would take 2.4 s
		t.Errorf("took %v", took)
	}
	for _, q := range res.Queries {
		switch q.Zone {
		case "bl.spamcop.net":
			if q.Kind != KindTimeout || q.Listed || !errors.Is(q.Err, dnsclient.ErrTimeout) {
				t.Errorf("%+v", q)
			}
		default:
			if q.Err != nil {
				t.Errorf("barracuda: %+v", q)
			}
		}
	}
	if res.Summary.Errors != 32 || res.Summary.Clean != 32 {
		t.Errorf("%+v", res.Summary)
	}
}

// An SPF "mx" or "a" term naming the domain's own MX hosts or the domain
// itself does not ask DNS the same question again.
func TestDiscoveryAsksOnce(t *testing.T) {
	srv := dnstest.Start(t, `
own.example.      MX  10 mx.own.example.
own.example.      MX  20 mx.own.example.
own.example.      A   192.0.2.80
own.example.      TXT "v=spf1 mx a mx/31 a:mx.own.example -all"
mx.own.example.   A   192.0.2.81
`)
	res := checker(t, srv, "zen.spamhaus.org").Check(context.Background(), targetsOf(t, "own.example"))
	seen := map[string]bool{}
	for _, q := range srv.Log() {
		if seen[q] {
			t.Errorf("asked twice: %s", q)
		}
		seen[q] = true
	}
	if n := len(res.Targets[0].IPs); n < 2 {
		t.Errorf("addresses %+v", res.Targets[0].IPs)
	}
}
