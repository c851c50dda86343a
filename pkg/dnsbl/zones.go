package dnsbl

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// Kind says what a list holds.
type Kind int

const (
	// IPList lists IP addresses (RFC 5782 §2).
	IPList Kind = iota
	// DomainList lists domain names (RFC 5782 §3, "RHSBL").
	DomainList
)

func (k Kind) String() string {
	if k == DomainList {
		return "domain"
	}
	return "ip"
}

// scheme names how a list's answers are interpreted.
type scheme int

const (
	schemeGeneric scheme = iota // RFC 5782: any 127/8 answer but 127.0.0.1 is a listing
	schemeSpamhausIP
	schemeSpamhausDBL
	schemeSpamhausZRD
	schemeURIBL
	schemeHostKarma
)

// Zone is one blocklist.
type Zone struct {
	// Name is the zone queried, e.g. "zen.spamhaus.org", or the Spamhaus
	// DQS name "KEY.zen.dq.spamhaus.net" after WithDQSKey.
	Name string
	// Title is a human name, e.g. "Spamhaus ZEN".
	Title string
	Kind  Kind
	// IPv6 is set when the list answers IPv6 queries (RFC 5782 §2.4);
	// IPv6 addresses are not checked against the others.
	IPv6 bool
	// Info is where to look an entry up or ask for removal.
	Info string
	// TestListed and TestUnlisted are the self-test probes of a domain
	// list (default "test" and "invalid", RFC 5782 §5).
	TestListed, TestUnlisted string

	scheme scheme
	dqs    string // Spamhaus DQS service name ("zen", "dbl"…), "" if none
	listed string // what 127.0.0.2 means on a single-code list
}

// Spamhaus public-mirror zones and their DQS service names
// (docs.spamhaustech.com, data-query-service/020-dqs-auth).
var catalogue = []Zone{
	{Name: "zen.spamhaus.org", Title: "Spamhaus ZEN", IPv6: true, scheme: schemeSpamhausIP, dqs: "zen", Info: "https://check.spamhaus.org/"},
	{Name: "sbl.spamhaus.org", Title: "Spamhaus SBL", IPv6: true, scheme: schemeSpamhausIP, dqs: "sbl", Info: "https://check.spamhaus.org/"},
	{Name: "xbl.spamhaus.org", Title: "Spamhaus XBL", IPv6: true, scheme: schemeSpamhausIP, dqs: "xbl", Info: "https://check.spamhaus.org/"},
	{Name: "pbl.spamhaus.org", Title: "Spamhaus PBL", IPv6: true, scheme: schemeSpamhausIP, dqs: "pbl", Info: "https://check.spamhaus.org/"},
	{Name: "sbl-xbl.spamhaus.org", Title: "Spamhaus SBL+XBL", IPv6: true, scheme: schemeSpamhausIP, dqs: "sbl-xbl", Info: "https://check.spamhaus.org/"},
	{Name: "dbl.spamhaus.org", Title: "Spamhaus DBL", Kind: DomainList, scheme: schemeSpamhausDBL, dqs: "dbl", Info: "https://check.spamhaus.org/",
		TestListed: "dbltest.com", TestUnlisted: "invalid"},
	// Spamhaus zones served only through DQS; they need --dqs-key.
	{Name: "authbl.dq.spamhaus.net", Title: "Spamhaus AuthBL", IPv6: true, scheme: schemeSpamhausIP, dqs: "authbl", Info: "https://check.spamhaus.org/"},
	{Name: "zrd.dq.spamhaus.net", Title: "Spamhaus ZRD", Kind: DomainList, scheme: schemeSpamhausZRD, dqs: "zrd", Info: "https://docs.spamhaus.com/"},
	{Name: "b.barracudacentral.org", Title: "Barracuda BRBL", Info: "https://www.barracudacentral.org/lookups",
		listed: "Barracuda BRBL: poor sending reputation, receivers using Barracuda reject this IP (removal: barracudacentral.org/rbl/removal-request)"},
	{Name: "bl.spamcop.net", Title: "SpamCop", Info: "https://www.spamcop.net/bl.shtml",
		listed: "SpamCop: recipients reported spam from this IP, the listing expires on its own once the reports stop"},
	{Name: "multi.uribl.com", Title: "URIBL multi", Kind: DomainList, scheme: schemeURIBL, Info: "https://admin.uribl.com/",
		TestListed: "test.uribl.com", TestUnlisted: "invalid"},
	// Not in the default set: lists ranges or whole networks (L2/L3), or
	// answers in a non-standard way; known here so that --add-zones
	// interprets them correctly.
	{Name: "dnsbl-1.uceprotect.net", Title: "UCEPROTECT level 1", Info: "https://www.uceprotect.net/",
		listed: "UCEPROTECT level 1: this IP sent mail to UCEPROTECT spam traps, the listing expires on its own once the hits stop"},
	{Name: "dnsbl-2.uceprotect.net", Title: "UCEPROTECT level 2 (ranges)", Info: "https://www.uceprotect.net/",
		listed: "UCEPROTECT level 2: the range around this IP is listed for its neighbours' spam, not necessarily for this IP"},
	{Name: "dnsbl-3.uceprotect.net", Title: "UCEPROTECT level 3 (whole ASNs)", Info: "https://www.uceprotect.net/",
		listed: "UCEPROTECT level 3: the whole network (ASN) of this IP's provider is listed, says nothing about this IP"},
	{Name: "hostkarma.junkemailfilter.com", Title: "JunkEmailFilter HostKarma", scheme: schemeHostKarma, Info: "https://wiki.junkemailfilter.com/index.php/Spam_DNS_Lists"},
}

// DefaultZones is the curated default set: widely used lists that are
// alive today and list individual senders. Dead lists (SORBS, AHBL,
// NJABL…) that answer "listed" for everything, and lists of whole provider
// ranges (UCEPROTECT levels 2 and 3), are deliberately absent.
var DefaultZones = []string{
	"zen.spamhaus.org",
	"b.barracudacentral.org",
	"bl.spamcop.net",
	"dbl.spamhaus.org",
	"multi.uribl.com",
}

// Known returns the catalogue entry for a zone name, if relayctl knows
// how to interpret its answers.
//
// A Spamhaus DQS name, "KEY.zen.dq.spamhaus.net", is known as the zone it
// serves.
func Known(name string) (Zone, bool) {
	name = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(name), "."))
	for _, z := range catalogue {
		if z.Name == name {
			return z, true
		}
	}
	if rest, ok := strings.CutSuffix(name, dqsSuffix); ok {
		if key, service, ok := strings.Cut(rest, "."); ok && key != "" && !strings.Contains(service, ".") {
			for _, z := range catalogue {
				if z.dqs == service {
					z.Name, z.Title = name, z.Title+" (DQS)"
					return z, true
				}
			}
		}
	}
	return Zone{}, false
}

const dqsSuffix = ".dq.spamhaus.net"

// NeedsDQSKey reports whether the zone is only served through the
// Spamhaus Data Query Service and no key was applied (see WithDQSKey).
func (z Zone) NeedsDQSKey() bool { return z.dqs != "" && z.Name == z.dqs+dqsSuffix }

// Catalogue returns every list relayctl knows how to interpret.
func Catalogue() []Zone { return slices.Clone(catalogue) }

// ErrZone is wrapped by errors about zone specifications.
var ErrZone = errors.New("dnsbl: invalid zone")

// ParseZone parses a zone specification: a zone name, optionally followed
// by ":ip", ":ip6" (an IP list that also answers IPv6 queries) or
// ":domain". A name relayctl knows (see Catalogue) keeps its
// interpretation; an unknown name is a generic RFC 5782 list, an IP list
// unless ":domain" says otherwise.
func ParseZone(spec string) (Zone, error) {
	spec = strings.TrimSpace(spec)
	name, kind, hasKind := strings.Cut(spec, ":")
	name = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(name), "."))
	if name == "" {
		return Zone{}, fmt.Errorf("%w: empty zone name in %q", ErrZone, spec)
	}
	if _, ok := dns.IsDomainName(name); !ok || !strings.Contains(name, ".") || len(name) > 200 {
		return Zone{}, fmt.Errorf("%w: %q is not a DNS zone name", ErrZone, name)
	}
	z, known := Known(name)
	if !known {
		z = Zone{Name: name, Title: name}
	}
	if hasKind {
		want := z.Kind
		switch strings.ToLower(strings.TrimSpace(kind)) {
		case "ip":
			want = IPList
		case "ip6", "ipv6":
			want, z.IPv6 = IPList, true
		case "domain":
			want = DomainList
		default:
			return Zone{}, fmt.Errorf("%w: %q: kind must be ip, ip6 or domain", ErrZone, spec)
		}
		if known && want != z.Kind {
			return Zone{}, fmt.Errorf("%w: %s is a %s list, not a %s list", ErrZone, name, z.Kind, want)
		}
		z.Kind = want
	}
	if z.Kind == DomainList {
		if z.TestListed == "" {
			z.TestListed = "test"
		}
		if z.TestUnlisted == "" {
			z.TestUnlisted = "invalid"
		}
	}
	return z, nil
}

// ParseZones parses several specifications (see ParseZone), dropping
// duplicates.
func ParseZones(specs []string) ([]Zone, error) {
	var out []Zone
	for _, s := range specs {
		if strings.TrimSpace(s) == "" {
			continue
		}
		z, err := ParseZone(s)
		if err != nil {
			return nil, err
		}
		if !slices.ContainsFunc(out, func(o Zone) bool { return o.Name == z.Name }) {
			out = append(out, z)
		}
	}
	return out, nil
}

// Defaults returns the default zone set.
func Defaults() []Zone {
	zs, err := ParseZones(DefaultZones)
	if err != nil {
		panic(err) // the built-in set is constant and valid
	}
	return zs
}

// WithDQSKey switches the Spamhaus zones in zs to the Data Query Service
// names "KEY.<zone>.dq.spamhaus.net"; other zones are unchanged. The key
// must be one DNS label of letters and digits (Spamhaus issues
// 26-character keys).
func WithDQSKey(zs []Zone, key string) ([]Zone, error) {
	key = strings.ToLower(strings.TrimSpace(key))
	if key == "" {
		return zs, nil
	}
	if len(key) > 63 || strings.IndexFunc(key, func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < '0' || r > '9')
	}) >= 0 {
		return nil, fmt.Errorf("%w: the DQS key must be letters and digits only", ErrZone)
	}
	out := make([]Zone, len(zs))
	for i, z := range zs {
		if z.dqs != "" && !strings.HasSuffix(z.Name, dqsSuffix) || z.NeedsDQSKey() {
			z.Name = key + "." + z.dqs + dqsSuffix
			z.Title += " (DQS)"
		}
		out[i] = z
	}
	return out, nil
}

// Spamhaus reports whether the zone is operated by Spamhaus (public
// mirror or DQS), whose refusal codes mean "use your own resolver or a
// DQS key".
func (z Zone) Spamhaus() bool {
	return z.scheme == schemeSpamhausIP || z.scheme == schemeSpamhausDBL || z.scheme == schemeSpamhausZRD
}
