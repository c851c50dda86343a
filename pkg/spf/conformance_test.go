package spf_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.yaml.in/yaml/v3"

	"github.com/relayctl/relayctl/pkg/dnsclient"
	"github.com/relayctl/relayctl/pkg/dnstest"
	"github.com/relayctl/relayctl/pkg/sharedtest"
	"github.com/relayctl/relayctl/pkg/spf"
)

// suiteScenario is one YAML document of the openspf.org test suite.
type suiteScenario struct {
	Description string               `yaml:"description"`
	Tests       map[string]suiteCase `yaml:"tests"`
	ZoneData    map[string][]any     `yaml:"zonedata"`
}

type suiteCase struct {
	Description string    `yaml:"description"`
	Spec        any       `yaml:"spec"`
	Helo        string    `yaml:"helo"`
	Host        string    `yaml:"host"`
	MailFrom    string    `yaml:"mailfrom"`
	Result      oneOrMore `yaml:"result"`
	Explanation string    `yaml:"explanation"`
}

// oneOrMore is a result or a list of acceptable results.
type oneOrMore []string

func (o *oneOrMore) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.SequenceNode {
		var l []string
		if err := n.Decode(&l); err != nil {
			return err
		}
		*o = l
		return nil
	}
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	*o = []string{s}
	return nil
}

// knownFailures lists suite cases that cannot pass, with the reason.
// It is empty: every case of rfc7208-tests.yml passes.
var knownFailures = map[string]string{}

func TestRFC7208Suite(t *testing.T) {
	runSuite(t, "rfc7208-tests.yml")
}

func runSuite(t *testing.T, file string) {
	path := sharedtest.File(t, "spf", file)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	total, passed := 0, 0
	for {
		var sc suiteScenario
		if err := dec.Decode(&sc); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("%s: %v", file, err)
		}
		srv := dnstest.Start(t, "")
		if err := loadZoneData(srv, sc.ZoneData); err != nil {
			t.Fatalf("%s: zonedata: %v", sc.Description, err)
		}
		// Short timeouts: the suite's TIMEOUT names never answer.
		client, err := dnsclient.New([]string{srv.Addr()}, dnsclient.WithTimeout(300*time.Millisecond), dnsclient.WithRetries(1))
		if err != nil {
			t.Fatal(err)
		}
		names := make([]string, 0, len(sc.Tests))
		for name := range sc.Tests {
			names = append(names, name)
		}
		sort.Strings(names)
		t.Run(sc.Description, func(t *testing.T) {
			for _, name := range names {
				tc := sc.Tests[name]
				total++
				ok := t.Run(name, func(t *testing.T) {
					if why, skip := knownFailures[name]; skip {
						t.Skip(why)
					}
					runCase(t, client, tc)
				})
				if ok {
					passed++
				}
			}
		})
	}
	t.Logf("%s: %d/%d cases pass", file, passed, total)
}

func runCase(t *testing.T, r dnsclient.Resolver, tc suiteCase) {
	ip := net.ParseIP(tc.Host)
	if ip == nil {
		t.Fatalf("bad host %q", tc.Host)
	}
	c := &spf.Checker{Resolver: r, HELO: tc.Helo}
	o := c.CheckHost(context.Background(), ip, spf.SenderDomain(tc.MailFrom, tc.Helo), tc.MailFrom)
	ok := false
	for _, want := range tc.Result {
		if string(o.Result) == want {
			ok = true
		}
	}
	if !ok {
		t.Fatalf("%s\nresult %s (matched %q, err %v), want %v", tc.Description, o.Result, o.Matched, o.Err, tc.Result)
	}
	if tc.Explanation != "" && o.Result == spf.Fail {
		want := tc.Explanation
		if want == "DEFAULT" { // the suite's marker for "no exp= text"
			want = ""
		}
		// DNS names are case-insensitive: the suite writes the %{ir}
		// nibbles of CAFE:BABE::1 in upper case, RFC 7208 §7.3's
		// example in lower case.
		if !strings.EqualFold(o.Explanation, want) {
			t.Fatalf("explanation %q, want %q", o.Explanation, tc.Explanation)
		}
	}
}

// loadZoneData turns the suite's zonedata into records on srv. SPF (type
// 99) records are copied as TXT when a name has no TXT, as the suite's
// header asks of drivers.
func loadZoneData(srv *dnstest.Server, zone map[string][]any) error {
	for name, items := range zone {
		// Owner names as the server sees them (presentation form: a
		// space is "\ ").
		fqdn := dns.Fqdn(strings.ReplaceAll(name, " ", `\ `))
		hdr := func(t uint16) dns.RR_Header {
			return dns.RR_Header{Name: fqdn, Rrtype: t, Class: dns.ClassINET, Ttl: 300}
		}
		var spfs, rrs []dns.RR
		hasTXT := false
		// The suite's driver answers from the items in order: a type
		// listed before TIMEOUT answers, every other type times out.
		// "TXT: NONE" means no TXT record (and no copy of the SPF ones):
		// a TXT query still reaches a later TIMEOUT.
		answered := map[uint16]bool{}
		for _, it := range items {
			if s, ok := it.(string); ok {
				if s == "TIMEOUT" {
					for _, qt := range []uint16{dns.TypeTXT, dns.TypeSPF, dns.TypeA, dns.TypeAAAA, dns.TypeMX, dns.TypePTR, dns.TypeCNAME} {
						if !answered[qt] {
							srv.Set(fqdn, qt, dnstest.Timeout)
						}
					}
					continue
				}
				return fmt.Errorf("%s: unknown item %q", name, s)
			}
			m, ok := it.(map[string]any)
			if !ok {
				return fmt.Errorf("%s: unknown item %v", name, it)
			}
			for typ, v := range m {
				if typ == "TXT" && v == "NONE" {
					hasTXT = true
					continue
				}
				answered[dns.StringToType[typ]] = true
				switch typ {
				case "TXT", "SPF":
					strs, err := txtStrings(v)
					if err != nil {
						return fmt.Errorf("%s: %v", name, err)
					}
					if typ == "TXT" {
						hasTXT = true
						rrs = append(rrs, &dns.TXT{Hdr: hdr(dns.TypeTXT), Txt: strs})
					} else {
						spfs = append(spfs, &dns.SPF{Hdr: hdr(dns.TypeSPF), Txt: strs})
					}
				case "A":
					rrs = append(rrs, &dns.A{Hdr: hdr(dns.TypeA), A: net.ParseIP(fmt.Sprint(v)).To4()})
				case "AAAA":
					rrs = append(rrs, &dns.AAAA{Hdr: hdr(dns.TypeAAAA), AAAA: net.ParseIP(fmt.Sprint(v))})
				case "PTR":
					rrs = append(rrs, &dns.PTR{Hdr: hdr(dns.TypePTR), Ptr: dns.Fqdn(fmt.Sprint(v))})
				case "CNAME":
					rrs = append(rrs, &dns.CNAME{Hdr: hdr(dns.TypeCNAME), Target: dns.Fqdn(fmt.Sprint(v))})
				case "MX":
					l, ok := v.([]any)
					if !ok || len(l) != 2 {
						return fmt.Errorf("%s: bad MX %v", name, v)
					}
					pref, _ := l[0].(int)
					rrs = append(rrs, &dns.MX{Hdr: hdr(dns.TypeMX), Preference: uint16(pref), Mx: dns.Fqdn(fmt.Sprint(l[1]))})
				default:
					return fmt.Errorf("%s: unknown type %s", name, typ)
				}
			}
		}
		srv.AddRR(rrs...)
		srv.AddRR(spfs...)
		if !hasTXT {
			for _, s := range spfs {
				srv.AddRR(&dns.TXT{Hdr: hdr(dns.TypeTXT), Txt: s.(*dns.SPF).Txt})
			}
		}
	}
	return nil
}

// txtStrings returns the character-strings of a TXT value in miekg/dns
// presentation form (escaped), so that raw bytes survive.
func txtStrings(v any) ([]string, error) {
	var raw []string
	switch x := v.(type) {
	case string:
		raw = []string{x}
	case []any:
		for _, p := range x {
			raw = append(raw, fmt.Sprint(p))
		}
	default:
		return nil, fmt.Errorf("bad TXT value %v", v)
	}
	out := make([]string, 0, len(raw))
	for _, s := range raw {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			c := s[i]
			switch {
			case c == '\\' || c == '"':
				b.WriteByte('\\')
				b.WriteByte(c)
			case c < 0x20 || c > 0x7e:
				fmt.Fprintf(&b, "\\%03d", c)
			default:
				b.WriteByte(c)
			}
		}
		out = append(out, b.String())
	}
	return out, nil
}

func TestRFC4408Suite(t *testing.T) {
	runSuite(t, "rfc4408-tests.yml")
}
