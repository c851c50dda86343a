// Package mx audits a domain's mail exchangers the way a sending MTA
// finds them (RFC 5321 §5.1): the MX records in preference order, the
// implicit MX (the domain's own A/AAAA) when there is none, the null MX
// that says "no mail here" (RFC 7505), MX targets that are aliases
// (RFC 2181 §10.3, RFC 5321 §5.1) or address literals, and hosts whose
// addresses cannot be resolved.
package mx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"github.com/relayctl/relayctl/pkg/dnsclient"
	"github.com/relayctl/relayctl/pkg/report"
)

// Finding codes.
const (
	CodeDomainNotFound = "mx.domain-not-found"
	CodeNone           = "mx.none"
	CodeImplicit       = "mx.implicit"
	CodeNull           = "mx.null"
	CodeNullMixed      = "mx.null-mixed"
	CodeCNAME          = "mx.cname-target"
	CodeIPTarget       = "mx.ip-target"
	CodeUnresolvable   = "mx.host-unresolvable"
	CodeNoUsableHost   = "mx.no-usable-host"
	CodePrivate        = "mx.private-address"
	CodeSingleHost     = "mx.single-host"
	CodeDNS            = "mx.dns-error"
)

// Host is one mail exchanger.
type Host struct {
	Preference uint16   `json:"preference"`
	Name       string   `json:"host"`
	CNAME      string   `json:"cname,omitempty"` // canonical name when Name is an alias
	Addresses  []string `json:"addresses"`
	Error      string   `json:"error,omitempty"`

	dnsFailed bool // the lookup failed (SERVFAIL, timeout): unknown, not broken
}

// Result is the JSON result of `check mx`.
type Result struct {
	Domain string `json:"domain"`
	// NullMX is true when the domain publishes "MX 0 ." (RFC 7505).
	NullMX bool `json:"null_mx"`
	// Implicit is true when there is no MX and senders use the domain's
	// own addresses (RFC 5321 §5.1).
	Implicit bool   `json:"implicit_mx"`
	Hosts    []Host `json:"hosts"`
}

// Check looks up domain's mail exchangers and adds findings to rep. DNS
// failures set rep.Incomplete.
func Check(ctx context.Context, r dnsclient.Resolver, domain string, rep *report.Report) *Result {
	domain = strings.TrimSuffix(strings.ToLower(domain), ".")
	res := &Result{Domain: domain, Hosts: []Host{}}
	mxs, resp, err := dnsclient.LookupMX(ctx, r, domain)
	if err != nil {
		dnsFailed(rep, err, "looking up the MX records of %s", domain)
		return res
	}
	if resp.Outcome == dnsclient.OutcomeNXDomain {
		rep.Error(CodeDomainNotFound, "%s does not exist (NXDOMAIN)", domain)
		return res
	}
	slices.SortStableFunc(mxs, func(a, b *dns.MX) int { return int(a.Preference) - int(b.Preference) })

	// RFC 7505 §3: a null MX is a single MX with preference 0 and target ".".
	for _, m := range mxs {
		if m.Mx == "." {
			res.NullMX = true
		}
	}
	if res.NullMX {
		if len(mxs) == 1 && mxs[0].Preference == 0 {
			rep.Info(CodeNull, "%s publishes a null MX (RFC 7505): it accepts no mail, and senders fail at once instead of queuing", domain)
			return res
		}
		rep.Error(CodeNullMixed, "%s mixes a null MX (\".\") with other MX records or a preference other than 0: RFC 7505 §3 forbids it and senders' behaviour is undefined", domain)
	}

	if len(mxs) == 0 {
		// RFC 5321 §5.1: no MX → the domain itself is the implicit MX.
		res.Implicit = true
		h := resolveHost(ctx, r, domain, 0, rep)
		res.Hosts = append(res.Hosts, h)
		if len(h.Addresses) == 0 {
			if !h.dnsFailed {
				rep.Error(CodeNone, "%s has no MX and no A/AAAA records: it cannot receive mail (bounces and replies to it fail); publish MX records, or a null MX (\"MX 0 .\", RFC 7505) if it never receives mail", domain)
			}
			return res
		}
		rep.Warn(CodeImplicit, "%s has no MX records: senders fall back to its A/AAAA address (implicit MX, RFC 5321 §5.1); publish an MX, or a null MX if it receives no mail", domain)
		return res
	}

	usable := 0
	for _, m := range mxs {
		if m.Mx == "." {
			continue
		}
		h := resolveHost(ctx, r, m.Mx, m.Preference, rep)
		if len(h.Addresses) > 0 {
			usable++
		}
		if h.CNAME != "" {
			// RFC 2181 §10.3, RFC 5321 §5.1: the MX target must not be an alias.
			rep.Warn(CodeCNAME, "MX host %s is an alias (CNAME to %s): MX targets must be canonical names (RFC 2181 §10.3), and some senders refuse aliases; point the MX at %s", h.Name, h.CNAME, h.CNAME)
		}
		if len(h.Addresses) == 0 && !h.dnsFailed && net.ParseIP(h.Name) == nil {
			rep.Error(CodeUnresolvable, "MX host %s %s: mail for this exchanger cannot be delivered", h.Name, h.Error)
		}
		res.Hosts = append(res.Hosts, h)
	}
	if usable == 0 && !rep.Incomplete {
		rep.Error(CodeNoUsableHost, "none of the MX hosts of %s has an address: mail to it cannot be delivered", domain)
	} else if len(res.Hosts) == 1 && usable == 1 {
		rep.Info(CodeSingleHost, "one MX host: senders queue mail while it is down (a second host is optional)")
	}
	return res
}

func resolveHost(ctx context.Context, r dnsclient.Resolver, name string, pref uint16, rep *report.Report) Host {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	h := Host{Preference: pref, Name: name, Addresses: []string{}}
	if ip := net.ParseIP(name); ip != nil {
		// RFC 7505 / RFC 5321 §5.1: an MX target is a host name, never an address.
		rep.Error(CodeIPTarget, "MX %d %s is an IP address: the target must be a host name with A/AAAA records; senders look up %s as a name and fail", pref, name, name)
		h.Error = "address literal as MX target"
	}
	nx := 0
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		ips, resp, err := dnsclient.LookupIP(ctx, r, name, qt)
		if err != nil {
			dnsFailed(rep, err, "resolving MX host %s", name)
			h.Error, h.dnsFailed = err.Error(), true
			return h
		}
		if c := resp.CNAMEs(); len(c) > 0 && h.CNAME == "" {
			h.CNAME = strings.TrimSuffix(c[len(c)-1].Target, ".")
		}
		if resp.Outcome == dnsclient.OutcomeNXDomain {
			nx++
		}
		for _, ip := range ips {
			h.Addresses = append(h.Addresses, ip.String())
			if ip.IsLoopback() || ip.IsPrivate() || ip.IsUnspecified() || ip.IsLinkLocalUnicast() {
				rep.Warn(CodePrivate, "MX host %s has the non-public address %s: senders on the internet cannot reach it", name, ip)
			}
		}
	}
	if len(h.Addresses) == 0 && h.Error == "" {
		h.Error = "has no A or AAAA records"
		if nx == 2 {
			h.Error = "does not exist (NXDOMAIN)"
		}
	}
	return h
}

func dnsFailed(rep *report.Report, err error, format string, args ...any) {
	var qe *dnsclient.QueryError
	if errors.As(err, &qe) {
		rep.Incomplete = true
		rep.Warn(CodeDNS, "%s: %v", fmt.Sprintf(format, args...), err)
		return
	}
	rep.Error(CodeDNS, "%s: %v", fmt.Sprintf(format, args...), err)
}
