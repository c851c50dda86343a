package dnsbl

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"
	"golang.org/x/net/publicsuffix"

	"github.com/relayctl/relayctl/pkg/dnsclient"
)

// DefaultConcurrency is the default bound on queries in flight.
const DefaultConcurrency = 64

// Checker checks targets against zones. Its fields are read-only while a
// check runs; one Checker may run several checks.
type Checker struct {
	Resolver dnsclient.Resolver
	Zones    []Zone
	// Concurrency bounds the DNS queries in flight across the whole run
	// (0: DefaultConcurrency).
	Concurrency int
	// Progress, if set, is called after each blocklist query with the
	// number done and the total (from several goroutines, never
	// concurrently for the same done value; it must be cheap).
	Progress func(done, total int)
}

// Error kinds of a Query, for scripts.
const (
	KindRefused    = "refused"    // the list answered an error code (ErrRefused)
	KindBadAnswer  = "bad-answer" // answer outside 127/8 (ErrBadAnswer)
	KindUnexpected = "unexpected" // an undefined 127/8 code (ErrUnexpected)
	KindTimeout    = "timeout"    // no answer in time
	KindServFail   = "servfail"   // SERVFAIL, REFUSED or another error RCODE
	KindNetwork    = "network"    // the resolver could not be reached
)

// Query is the answer of one list about one target.
type Query struct {
	Target  string   `json:"target"`
	Zone    string   `json:"zone"`
	List    string   `json:"list"`
	Name    string   `json:"query"`
	Listed  bool     `json:"listed"`
	Codes   []string `json:"codes"`
	Lists   []string `json:"sublists,omitempty"`
	Meaning string   `json:"meaning"`
	Reason  string   `json:"reason"`
	Error   string   `json:"error"`
	Kind    string   `json:"error_kind,omitempty"`
	// From says where an IP came from when it was found through a domain
	// target ("example.com MX mx1.example.com", "example.com SPF
	// ip4:192.0.2.0/28"); empty for addresses given directly or in a range.
	From []string `json:"from,omitempty"`

	Err error `json:"-"`
}

// Status is "listed", "clean" or "error".
func (q Query) Status() string {
	switch {
	case q.Err != nil:
		return "error"
	case q.Listed:
		return "listed"
	}
	return "clean"
}

// Result is the outcome of a run.
type Result struct {
	Targets []TargetInfo `json:"targets"`
	Queries []Query      `json:"queries"`
	Summary Summary      `json:"summary"`
}

// Summary counts the queries of a run.
type Summary struct {
	Targets int `json:"targets"`
	Queries int `json:"queries"`
	Listed  int `json:"listed"`
	Clean   int `json:"clean"`
	Errors  int `json:"errors"`
}

// TargetInfo describes a target as given and, for a domain, the
// addresses found for it.
type TargetInfo struct {
	Target    string     `json:"target"`
	Kind      string     `json:"kind"` // "ip", "range", "domain"
	Addresses int        `json:"addresses"`
	IPs       []SourceIP `json:"ips,omitempty"`
	Notes     []string   `json:"notes,omitempty"`
	Errors    []string   `json:"errors,omitempty"`
	// Unchecked is set for an IPv6 address or range when no list in the
	// set answers IPv6 queries.
	Unchecked bool `json:"unchecked,omitempty"`
	errs      []error
}

// Incomplete reports whether finding the target's addresses failed.
func (t TargetInfo) Incomplete() bool { return len(t.errs) > 0 }

// SourceIP is an address found for a domain and where it came from.
type SourceIP struct {
	IP   string   `json:"ip"`
	From []string `json:"from"`
	addr netip.Addr
}

// limited wraps a Resolver with the run's single semaphore: every query
// of the run, blocklist or discovery, waits for a slot.
type limited struct {
	r   dnsclient.Resolver
	sem chan struct{}
}

func (l limited) Exchange(ctx context.Context, name string, qtype uint16) (*dnsclient.Response, error) {
	select {
	case l.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, &dnsclient.QueryError{Name: name, Type: qtype, Rcode: -1, Outcome: dnsclient.OutcomeTimeout, Err: dnsclient.ErrTimeout, Cause: ctx.Err()}
	}
	defer func() { <-l.sem }()
	return l.r.Exchange(ctx, name, qtype)
}

func (c *Checker) concurrency() int {
	if c.Concurrency > 0 {
		return c.Concurrency
	}
	return DefaultConcurrency
}

func (c *Checker) resolver() limited {
	return limited{r: c.Resolver, sem: make(chan struct{}, c.concurrency())}
}

// job is one query to make; it refers to its zone by index so that a
// run of a million queries does not hold a million copies of a Zone.
type job struct {
	zone   int
	target string
	name   string
	from   []string
}

// Check looks every target up in every applicable zone: addresses (and
// every address of a range) in the IP lists, domains in the domain lists,
// and a domain's MX and SPF addresses in the IP lists. IPv6 addresses are
// asked only of lists that answer IPv6 queries. Every query runs under
// the one concurrency bound; a failure affects only its own Query.
func (c *Checker) Check(ctx context.Context, targets []Target) *Result {
	res := &Result{Targets: make([]TargetInfo, len(targets))}
	r := c.resolver()

	// Find the addresses of the domain targets first (MX, SPF), as many
	// domains at once as the bound allows queries.
	var wg sync.WaitGroup
	gate := make(chan struct{}, c.concurrency())
	for i, t := range targets {
		info := &res.Targets[i]
		info.Target = t.Input
		switch {
		case t.IsDomain():
			info.Target, info.Kind = t.Domain, "domain"
			wg.Add(1)
			gate <- struct{}{}
			go func() {
				defer func() { <-gate; wg.Done() }()
				discover(ctx, r, t.Domain, info)
			}()
		case t.Prefix.IsValid():
			info.Target, info.Kind, info.Addresses = t.Prefix.String(), "range", t.Size()
		default:
			info.Target, info.Kind, info.Addresses = t.Addr.String(), "ip", 1
		}
	}
	wg.Wait()

	jobs := c.plan(targets, res.Targets)
	res.Queries = make([]Query, len(jobs))
	c.run(ctx, r, jobs, res.Queries)

	res.Summary.Targets = len(targets)
	res.Summary.Queries = len(res.Queries)
	for _, q := range res.Queries {
		switch q.Status() {
		case "listed":
			res.Summary.Listed++
		case "clean":
			res.Summary.Clean++
		default:
			res.Summary.Errors++
		}
	}
	return res
}

// plan lists the queries, each (address or domain, zone) once, in the
// order of the targets.
func (c *Checker) plan(targets []Target, infos []TargetInfo) []job {
	var jobs []job
	seen := map[netip.Addr][]int{} // address → its job indexes
	addIP := func(a netip.Addr, from string) {
		if idx, ok := seen[a]; ok {
			for _, i := range idx {
				if from != "" && !slices.Contains(jobs[i].from, from) {
					jobs[i].from = append(jobs[i].from, from)
				}
			}
			return
		}
		idx := []int{}
		target := a.String()
		for zi, z := range c.Zones {
			if z.Kind != IPList || (a.Is6() && !z.IPv6) {
				continue
			}
			j := job{zone: zi, target: target, name: QueryName(z.Name, a)}
			if from != "" {
				j.from = []string{from}
			}
			idx = append(idx, len(jobs))
			jobs = append(jobs, j)
		}
		seen[a] = idx
	}
	seenDomain := map[string]int{} // domain → index of its first job
	addDomain := func(d, from string) {
		if i, ok := seenDomain[d]; ok {
			if from != "" {
				for k := i; k < len(jobs) && jobs[k].target == d; k++ {
					if !slices.Contains(jobs[k].from, from) {
						jobs[k].from = append(jobs[k].from, from)
					}
				}
			}
			return
		}
		seenDomain[d] = len(jobs)
		for zi, z := range c.Zones {
			if z.Kind == DomainList {
				j := job{zone: zi, target: d, name: DomainQueryName(z.Name, d)}
				if from != "" {
					j.from = []string{from}
				}
				jobs = append(jobs, j)
			}
		}
	}
	v6 := slices.ContainsFunc(c.Zones, func(z Zone) bool { return z.Kind == IPList && z.IPv6 })
	for i, t := range targets {
		if !v6 && (t.Addr.Is6() || t.Prefix.Addr().Is6()) {
			infos[i].Unchecked = true
			infos[i].Notes = append(infos[i].Notes, "no list in the set answers IPv6 queries (Spamhaus ZEN does): not checked")
		}
		if !v6 && t.IsDomain() {
			for _, sip := range infos[i].IPs {
				if sip.addr.Is6() {
					infos[i].Notes = append(infos[i].Notes, sip.IP+": no list in the set answers IPv6 queries: not checked")
				}
			}
		}
		switch {
		case t.IsDomain():
			addDomain(t.Domain, "")
			// URIBL lists registered domains only ("we strip all
			// hostparts"), and a DBL listing of the registered domain
			// covers its hosts: ask for it too.
			if org, err := publicsuffix.EffectiveTLDPlusOne(t.Domain); err == nil && org != t.Domain {
				addDomain(org, "registered domain of "+t.Domain)
			}
			for _, sip := range infos[i].IPs {
				for _, f := range sip.From {
					addIP(sip.addr, t.Domain+" "+f)
				}
			}
		case t.Prefix.IsValid():
			for _, a := range t.Addrs() {
				addIP(a, "")
			}
		default:
			addIP(t.Addr, "")
		}
	}
	return jobs
}

// GiveUpAfter is how many queries in a row a list may leave unanswered
// (timeouts) before the rest of its queries in the run are not sent: a
// list that has gone silent would otherwise hold every concurrency slot
// for the full timeout, query after query. Its remaining results are
// errors saying so; the other lists are not affected.
const GiveUpAfter = 10

// silence tracks one list's unanswered queries in a row.
type silence struct {
	timeouts atomic.Int32
	gaveUp   atomic.Bool
}

// run asks every job with one worker per concurrency slot, so no more
// goroutines than slots exist however many queries a run has.
func (c *Checker) run(ctx context.Context, r limited, jobs []job, out []Query) {
	var (
		next   atomic.Int64
		done   atomic.Int64
		wg     sync.WaitGroup
		total  = len(jobs)
		silent = make([]silence, len(c.Zones))
	)
	workers := min(c.concurrency(), total)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= total {
					return
				}
				j, sl := jobs[i], &silent[jobs[i].zone]
				z := c.Zones[j.zone]
				if sl.gaveUp.Load() {
					out[i] = Query{Target: j.target, Zone: z.Name, List: z.Title, Name: j.name, From: j.from, Codes: []string{},
						Kind: KindTimeout, Err: errGaveUp}
					out[i].Error = fmt.Sprintf("not asked: %s left %d queries in a row unanswered", z.Name, GiveUpAfter)
				} else {
					out[i] = lookup(ctx, r, z, j)
					switch {
					case out[i].Kind == KindTimeout:
						if sl.timeouts.Add(1) >= GiveUpAfter {
							sl.gaveUp.Store(true)
						}
					case out[i].Err == nil || errors.Is(out[i].Err, ErrRefused) || errors.Is(out[i].Err, ErrUnexpected):
						sl.timeouts.Store(0) // it answered
					}
				}
				d := int(done.Add(1))
				if c.Progress != nil {
					c.Progress(d, total)
				}
			}
		}()
	}
	wg.Wait()
}

// lookup asks one list about one target and fetches the TXT reason when
// the list lists it (RFC 5782 §2.2) or refuses (the TXT says why).
func lookup(ctx context.Context, r dnsclient.Resolver, z Zone, j job) Query {
	q := Query{Target: j.target, Zone: z.Name, List: z.Title, Name: j.name, From: j.from, Codes: []string{}}
	resp, err := r.Exchange(ctx, j.name, dns.TypeA)
	if err != nil {
		q.Err = err
		q.Error = err.Error()
		q.Kind = queryKind(err)
		return q
	}
	v := z.Interpret(addrs(resp.Records()))
	if v.Codes != nil {
		q.Codes = v.Codes
	}
	q.Listed, q.Lists, q.Meaning = v.Listed, v.Lists, v.Meaning
	if v.Err != nil {
		q.Err = v.Err
		q.Error = v.Err.Error()
		q.Kind = queryKind(v.Err)
	}
	if v.Listed || errors.Is(v.Err, ErrRefused) {
		if txts, tresp, err := dnsclient.LookupTXT(ctx, r, j.name); err == nil && tresp.Outcome == dnsclient.OutcomeAnswer {
			q.Reason = strings.Join(txts, " / ")
		}
	}
	return q
}

// addrs returns the addresses of the A records among rrs (CNAMEs that
// led to them, and any other type, are skipped).
func addrs(rrs []dns.RR) []netip.Addr {
	var out []netip.Addr
	for _, rr := range rrs {
		if a, ok := rr.(*dns.A); ok {
			if ip, ok := netip.AddrFromSlice(a.A); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out
}

var errGaveUp = fmt.Errorf("%w: the list stopped answering", dnsclient.ErrTimeout)

func queryKind(err error) string {
	switch {
	case errors.Is(err, ErrRefused):
		return KindRefused
	case errors.Is(err, ErrBadAnswer):
		return KindBadAnswer
	case errors.Is(err, ErrUnexpected):
		return KindUnexpected
	case errors.Is(err, dnsclient.ErrTimeout):
		return KindTimeout
	case errors.Is(err, dnsclient.ErrServFail):
		return KindServFail
	}
	return KindNetwork
}
