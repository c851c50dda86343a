package dnsbl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/miekg/dns"

	"github.com/relayctl/relayctl/pkg/dnsclient"
	"github.com/relayctl/relayctl/pkg/spf"
)

// collector gathers a domain's addresses, each with where it came from,
// from several goroutines.
type collector struct {
	mu    sync.Mutex
	info  *TargetInfo
	index map[netip.Addr]int
}

func (c *collector) add(a netip.Addr, from string) {
	a = a.Unmap()
	c.mu.Lock()
	defer c.mu.Unlock()
	if i, ok := c.index[a]; ok {
		if !slices.Contains(c.info.IPs[i].From, from) {
			c.info.IPs[i].From = append(c.info.IPs[i].From, from)
		}
		return
	}
	c.index[a] = len(c.info.IPs)
	c.info.IPs = append(c.info.IPs, SourceIP{IP: a.String(), From: []string{from}, addr: a})
}

func (c *collector) note(format string, args ...any) {
	c.mu.Lock()
	c.info.Notes = append(c.info.Notes, fmt.Sprintf(format, args...))
	c.mu.Unlock()
}

func (c *collector) fail(err error) {
	c.mu.Lock()
	c.info.errs = append(c.info.errs, err)
	c.info.Errors = append(c.info.Errors, err.Error())
	c.mu.Unlock()
}

// discover finds the addresses a domain receives and sends mail from:
// its MX hosts' addresses (or the domain's own, the implicit MX of
// RFC 5321 §5.1) and the ip4/ip6/a/mx terms of its SPF record
// (RFC 7208 §5).
func discover(ctx context.Context, r dnsclient.Resolver, domain string, info *TargetInfo) {
	c := &collector{info: info, index: map[netip.Addr]int{}}
	r = &askOnce{r: r, calls: map[question]*answer{}}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.mx(ctx, r, domain, "MX", true, -1, -1) }()
	go func() { defer wg.Done(); c.spf(ctx, r, domain) }()
	wg.Wait()
	slices.SortStableFunc(info.IPs, func(a, b SourceIP) int { return a.addr.Compare(b.addr) })
	info.Addresses = len(info.IPs)
}

// askOnce asks each question once and gives every asker its answer: the
// MX and SPF walks of one domain meet the same names (an SPF "mx" or "a"
// term names the domain's own MX hosts or the domain, several MX hosts
// may be one), and run at the same time.
type askOnce struct {
	r     dnsclient.Resolver
	mu    sync.Mutex
	calls map[question]*answer
}

type question struct {
	name  string
	qtype uint16
}

type answer struct {
	done chan struct{}
	resp *dnsclient.Response
	err  error
}

func (o *askOnce) Exchange(ctx context.Context, name string, qtype uint16) (*dnsclient.Response, error) {
	q := question{strings.ToLower(strings.TrimSuffix(name, ".")), qtype}
	o.mu.Lock()
	a, asked := o.calls[q]
	if !asked {
		a = &answer{done: make(chan struct{})}
		o.calls[q] = a
	}
	o.mu.Unlock()
	if asked {
		<-a.done
		return a.resp, a.err
	}
	a.resp, a.err = o.r.Exchange(ctx, name, qtype)
	close(a.done)
	return a.resp, a.err
}

// mx adds the addresses of domain's MX hosts, labelled "<label> host".
// With implicit, a domain without MX records contributes its own
// addresses (RFC 5321 §5.1).
func (c *collector) mx(ctx context.Context, r dnsclient.Resolver, domain, label string, implicit bool, prefix4, prefix6 int) {
	mxs, resp, err := dnsclient.LookupMX(ctx, r, domain)
	if err != nil {
		c.fail(fmt.Errorf("%s %s: %w", label, domain, err))
		return
	}
	if resp.Outcome == dnsclient.OutcomeNXDomain {
		c.note("%s: the domain does not exist (NXDOMAIN)", domain)
		return
	}
	if len(mxs) == 0 {
		if implicit {
			c.hostIPs(ctx, r, domain, "A "+domain+" (no MX: implicit MX, RFC 5321 §5.1)", -1, -1)
		}
		return
	}
	var wg sync.WaitGroup
	for _, mx := range mxs {
		host := strings.TrimSuffix(mx.Mx, ".")
		if host == "" { // RFC 7505 null MX: the domain accepts no mail
			c.note("%s: null MX (RFC 7505): the domain receives no mail", domain)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.hostIPs(ctx, r, host, label+" "+host, prefix4, prefix6)
		}()
	}
	wg.Wait()
}

// hostIPs adds the A and AAAA addresses of host. With a prefix (SPF
// dual-cidr-length, RFC 7208 §5.6) each address stands for its network.
func (c *collector) hostIPs(ctx context.Context, r dnsclient.Resolver, host, from string, prefix4, prefix6 int) {
	var wg sync.WaitGroup
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ips, _, err := dnsclient.LookupIP(ctx, r, host, qt)
			if err != nil {
				c.fail(fmt.Errorf("%s: %w", from, err))
				return
			}
			for _, ip := range ips {
				a, ok := netip.AddrFromSlice(ip)
				if !ok {
					continue
				}
				a = a.Unmap()
				bits := prefix4
				if a.Is6() {
					bits = prefix6
				}
				if bits >= 0 && bits < a.BitLen() {
					c.addRange(netip.PrefixFrom(a, bits).Masked(), from)
					continue
				}
				c.add(a, from)
			}
		}()
	}
	wg.Wait()
}

// SPFRangeLimit is the largest SPF range (in addresses) that is checked
// address by address; a larger one is checked at its first address only,
// which finds listings of the whole range (SBL, DROP) but not of single
// addresses in it.
const SPFRangeLimit = 256

func (c *collector) addRange(p netip.Prefix, from string) {
	t := Target{Prefix: p.Masked()}
	if t.Size() > SPFRangeLimit {
		c.note("%s: %s holds more than %d addresses; checked its first address only", from, p, SPFRangeLimit)
		c.add(p.Masked().Addr(), from)
		return
	}
	for _, a := range t.Addrs() {
		c.add(a, from)
	}
}

// maxRedirects bounds how many SPF redirect= modifiers are followed
// (RFC 7208 §4.6.4 allows 10 DNS-querying terms in all).
const maxRedirects = 10

// spf adds the addresses the domain's SPF record (RFC 7208) authorises
// directly: ip4 and ip6 networks, and the addresses of its a and mx terms
// (with their dual-cidr-length). A redirect= is followed, since the
// target's record is the one in effect; include: is not (it names a third
// party's ranges, usually a large provider), and terms with macros
// cannot be expanded without a sender.
func (c *collector) spf(ctx context.Context, r dnsclient.Resolver, domain string) {
	seen := map[string]bool{}
	for hop := 0; hop <= maxRedirects; hop++ {
		seen[domain] = true
		rec, _, err := spf.LookupRecord(ctx, r, domain)
		switch {
		case errors.Is(err, spf.ErrDNS):
			c.fail(fmt.Errorf("SPF %s: %w", domain, spf.DNSCause(err)))
			return
		case errors.Is(err, spf.ErrNoRecord):
			if hop > 0 {
				c.note("SPF redirect=%s: no SPF record there", domain)
			}
			return
		case err != nil:
			c.note("SPF %s: %v; its addresses are not checked", domain, err)
			return
		}
		var wg sync.WaitGroup
		for _, m := range rec.Mechanisms {
			from := "SPF " + m.Term
			if hop > 0 {
				from = "SPF (" + domain + ") " + m.Term
			}
			target := m.Domain
			if target == "" {
				target = domain
			}
			switch m.Kind {
			case "ip4", "ip6":
				if p, ok := netipPrefix(m.Net); ok {
					c.addRange(p, from)
				}
			case "a", "mx":
				if strings.Contains(target, "%") {
					c.note("%s: holds a macro, which needs a sender to expand; not checked", from)
					continue
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					if m.Kind == "a" {
						c.hostIPs(ctx, r, strings.TrimSuffix(target, "."), from, m.Prefix4, m.Prefix6)
					} else {
						c.mx(ctx, r, strings.TrimSuffix(target, "."), from+":", false, m.Prefix4, m.Prefix6)
					}
				}()
			case "include":
				c.note("%s: not followed (a third party's addresses)", from)
			}
		}
		wg.Wait()
		if rec.Redirect == "" || slices.ContainsFunc(rec.Mechanisms, func(m spf.Mechanism) bool { return m.Kind == "all" }) {
			return // RFC 7208 §6.1: redirect is ignored when "all" is present
		}
		next := strings.ToLower(strings.TrimSuffix(rec.Redirect, "."))
		if strings.Contains(next, "%") {
			c.note("SPF redirect=%s holds a macro, which needs a sender to expand; not followed", rec.Redirect)
			return
		}
		if seen[next] {
			c.note("SPF redirect=%s loops; stopped", rec.Redirect)
			return
		}
		domain = next
	}
	c.note("SPF: more than %d redirects; stopped", maxRedirects)
}

func netipPrefix(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, bits := n.Mask.Size()
	if a.Is4In6() && bits == 32 {
		a = a.Unmap()
	}
	if bits == 0 || a.BitLen() != bits {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, ones).Masked(), true
}
