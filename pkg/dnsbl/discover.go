package dnsbl

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/miekg/dns"

	"github.com/relayctl/relayctl/pkg/dnsclient"
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
	c.mx(ctx, r, domain, "MX", true)
	slices.SortStableFunc(info.IPs, func(a, b SourceIP) int { return a.addr.Compare(b.addr) })
	info.Addresses = len(info.IPs)
}

// mx adds the addresses of domain's MX hosts, labelled "<label> host".
// With implicit, a domain without MX records contributes its own
// addresses (RFC 5321 §5.1).
func (c *collector) mx(ctx context.Context, r dnsclient.Resolver, domain, label string, implicit bool) {
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
			c.hostIPs(ctx, r, host, label+" "+host, -1, -1)
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
