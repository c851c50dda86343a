// Package rdns checks a sending IP's reverse DNS the way receivers do
// before anything else: the PTR record (RFC 1035 §3.5, RFC 3596 §2.5),
// forward confirmation of the PTR name back to the IP ("FCrDNS", the
// iprev method of RFC 8601 §3), and whether the HELO/EHLO name the relay
// announces matches it and resolves to the IP (RFC 5321 §4.1.4).
package rdns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"

	"github.com/miekg/dns"

	"github.com/relayctl/relayctl/pkg/dnsclient"
	"github.com/relayctl/relayctl/pkg/report"
)

// Finding codes.
const (
	CodeNone          = "ptr.none"
	CodeMultiple      = "ptr.multiple"
	CodeNotConfirmed  = "ptr.not-confirmed"
	CodeConfirmed     = "ptr.confirmed"
	CodeGeneric       = "ptr.generic-name"
	CodeHELOMismatch  = "ptr.helo-mismatch"
	CodeHELONoResolve = "ptr.helo-unresolvable"
	CodeHELOMatch     = "ptr.helo-match"
	CodeDNS           = "ptr.dns-error"
)

// Name is one PTR name and its forward lookup.
type Name struct {
	Name      string   `json:"name"`
	Addresses []string `json:"addresses"`
	Confirmed bool     `json:"confirmed"`
}

// Result is the JSON result of `check ptr`.
type Result struct {
	IP     string `json:"ip"`
	Names  []Name `json:"ptr"`
	FCrDNS bool   `json:"fcrdns"`
	HELO   string `json:"helo,omitempty"`
	// HELOMatches: the HELO name is one of the confirmed PTR names.
	HELOMatches bool `json:"helo_matches_ptr"`
	// HELOResolves: the HELO name has the IP among its addresses.
	HELOResolves bool `json:"helo_resolves_to_ip"`
}

// genericRE matches PTR names ISPs give dynamic or unassigned addresses
// ("192-0-2-1.dsl.example.net", "dhcp-…", "pool…"), which receivers score
// as a botnet sign.
var genericRE = regexp.MustCompile(`(?i)(\d{1,3}[-.x]\d{1,3}[-.x]\d{1,3}[-.x]\d{1,3}|\b(dyn(amic)?|dhcp|pool|x?dsl|adsl|cable|dial(up)?|ppp|broadband|unassigned)[-.\d])`)

// Check looks up the PTR of ip, confirms each name forward, and compares
// helo (optional) with it. DNS failures set rep.Incomplete.
func Check(ctx context.Context, r dnsclient.Resolver, ip net.IP, helo string, rep *report.Report) *Result {
	res := &Result{IP: ip.String(), Names: []Name{}, HELO: strings.TrimSuffix(strings.ToLower(helo), ".")}
	qtype := dns.TypeA
	if ip.To4() == nil {
		qtype = dns.TypeAAAA
	}
	names, _, err := dnsclient.LookupPTR(ctx, r, ip)
	if err != nil {
		dnsFailed(rep, err, "looking up the PTR of %s", ip)
		return res
	}
	if len(names) == 0 {
		rep.Error(CodeNone, "%s has no reverse DNS (PTR) record: many receivers reject or junk mail from such IPs; ask whoever owns the address block to set a PTR to your mail host name", ip)
	}
	if len(names) > 1 {
		rep.Warn(CodeMultiple, "%s has %d PTR records: receivers may pick any one; publish exactly one", ip, len(names))
	}
	for _, n := range names {
		n = strings.TrimSuffix(strings.ToLower(n), ".")
		nm := Name{Name: n, Addresses: []string{}}
		ips, _, err := dnsclient.LookupIP(ctx, r, n, qtype)
		if err != nil {
			dnsFailed(rep, err, "resolving the PTR name %s", n)
			res.Names = append(res.Names, nm)
			continue
		}
		for _, a := range ips {
			nm.Addresses = append(nm.Addresses, a.String())
			if a.Equal(ip) {
				nm.Confirmed = true
			}
		}
		if nm.Confirmed {
			res.FCrDNS = true
		}
		if genericRE.MatchString(n) {
			rep.Warn(CodeGeneric, "PTR name %s looks like a generic/dynamic ISP name: receivers score that as a botnet sign; use a name of your own such as mail.example.com", n)
		}
		res.Names = append(res.Names, nm)
	}
	if len(names) > 0 && !res.FCrDNS && !rep.Incomplete {
		rep.Error(CodeNotConfirmed, "forward-confirmed reverse DNS fails: no PTR name of %s resolves back to it (%s); add an A/AAAA record for the PTR name", ip, strings.Join(names, ", "))
	} else if res.FCrDNS {
		rep.Info(CodeConfirmed, "forward-confirmed reverse DNS passes")
	}
	if res.HELO == "" {
		return res
	}
	for _, n := range res.Names {
		if n.Confirmed && n.Name == res.HELO {
			res.HELOMatches = true
		}
	}
	ips, _, err := dnsclient.LookupIP(ctx, r, res.HELO, qtype)
	if err != nil {
		dnsFailed(rep, err, "resolving the HELO name %s", res.HELO)
		return res
	}
	for _, a := range ips {
		if a.Equal(ip) {
			res.HELOResolves = true
		}
	}
	switch {
	case res.HELOMatches:
		rep.Info(CodeHELOMatch, "HELO name %s matches the reverse DNS of %s", res.HELO, ip)
	case len(res.Names) > 0:
		rep.Warn(CodeHELOMismatch, "HELO name %s is not the PTR name of %s (%s): set the relay's hostname to the PTR name", res.HELO, ip, res.Names[0].Name)
	}
	if !res.HELOResolves {
		rep.Warn(CodeHELONoResolve, "HELO name %s does not resolve to %s: receivers and SPF HELO checks (RFC 7208 §2.3) may penalise it", res.HELO, ip)
	}
	return res
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
