package dnsbl

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func zone(t *testing.T, spec string) Zone {
	t.Helper()
	z, err := ParseZone(spec)
	if err != nil {
		t.Fatal(err)
	}
	return z
}

// Every return code in ../shared/testdata/dnsbl/ZONES.md.
func TestInterpretCodes(t *testing.T) {
	type tc struct {
		zone, answer string
		listed       bool
		list         string // sub-list, "" for none
		want         string // substring of the meaning, or of the error
		err          error
	}
	cases := []tc{
		{"zen.spamhaus.org", "127.0.0.2", true, "SBL", "spam source", nil},
		{"zen.spamhaus.org", "127.0.0.3", true, "CSS", "low-reputation", nil},
		{"zen.spamhaus.org", "127.0.0.4", true, "XBL", "infected", nil},
		{"zen.spamhaus.org", "127.0.0.5", true, "XBL", "infected", nil},
		{"zen.spamhaus.org", "127.0.0.6", true, "XBL", "infected", nil},
		{"zen.spamhaus.org", "127.0.0.7", true, "XBL", "infected", nil},
		{"sbl.spamhaus.org", "127.0.0.8", true, "SBL", "reserved", nil},
		{"zen.spamhaus.org", "127.0.0.9", true, "DROP", "hijacked", nil},
		{"zen.spamhaus.org", "127.0.0.10", true, "PBL", "not a spam listing", nil},
		{"zen.spamhaus.org", "127.0.0.11", true, "PBL", "not a spam listing", nil},
		{"zen.spamhaus.org", "127.0.0.20", true, "AuthBL", "authentication", nil},
		{"zen.spamhaus.org", "127.0.0.30", true, "BCL", "botnet", nil},
		{"pbl.spamhaus.org", "127.0.0.10", true, "PBL", "relay through your provider", nil},
		{"zen.spamhaus.org", "127.255.255.252", false, "", "typing error", ErrRefused},
		{"zen.spamhaus.org", "127.255.255.254", false, "", "public/open resolver", ErrRefused},
		{"zen.spamhaus.org", "127.255.255.255", false, "", "excessive", ErrRefused},
		{"zen.spamhaus.org", "127.255.255.250", false, "", "DQS key", ErrRefused},
		{"zen.spamhaus.org", "127.255.255.251", false, "", "DQS key", ErrRefused},
		{"zen.spamhaus.org", "127.0.0.1", false, "", "not a Spamhaus", ErrUnexpected},
		{"zen.spamhaus.org", "127.0.1.2", false, "", "not a Spamhaus", ErrUnexpected},
		{"zen.spamhaus.org", "10.0.0.1", false, "", "outside 127.0.0.0/8", ErrBadAnswer},
		{"dbl.spamhaus.org", "127.0.1.2", true, "spam", "low-reputation domain", nil},
		{"dbl.spamhaus.org", "127.0.1.4", true, "phish", "phishing", nil},
		{"dbl.spamhaus.org", "127.0.1.5", true, "malware", "malware", nil},
		{"dbl.spamhaus.org", "127.0.1.6", true, "botnet-cc", "botnet", nil},
		{"dbl.spamhaus.org", "127.0.1.102", true, "abused-legit", "legitimate domain abused", nil},
		{"dbl.spamhaus.org", "127.0.1.103", true, "abused-redirector", "redirector", nil},
		{"dbl.spamhaus.org", "127.0.1.104", true, "abused-legit-phish", "phishing", nil},
		{"dbl.spamhaus.org", "127.0.1.105", true, "abused-legit-malware", "malware", nil},
		{"dbl.spamhaus.org", "127.0.1.106", true, "abused-legit-botnet-cc", "command-and-control", nil},
		{"dbl.spamhaus.org", "127.0.1.255", false, "", "IP queries are not allowed", ErrRefused},
		{"dbl.spamhaus.org", "127.255.255.254", false, "", "public/open resolver", ErrRefused},
		{"dbl.spamhaus.org", "127.0.0.2", false, "", "not a Spamhaus DBL", ErrUnexpected},
		{"zrd.dq.spamhaus.net", "127.0.2.2", true, "ZRD", "newly observed", nil},
		{"zrd.dq.spamhaus.net", "127.0.2.24", true, "ZRD", "127.0.2.24", nil},
		{"zrd.dq.spamhaus.net", "127.0.2.25", false, "", "not a Spamhaus ZRD", ErrUnexpected},
		{"zrd.dq.spamhaus.net", "127.255.255.251", false, "", "DQS key", ErrRefused},
		{"authbl.dq.spamhaus.net", "127.0.0.20", true, "AuthBL", "authentication", nil},
		{"abcdefghijklmnopqrstuvwxyz.zen.dq.spamhaus.net", "127.0.0.10", true, "PBL", "not a spam listing", nil},
		{"abcdefghijklmnopqrstuvwxyz.dbl.dq.spamhaus.net", "127.0.1.255", false, "", "IP queries are not allowed", ErrRefused},
		{"b.barracudacentral.org", "127.0.0.2", true, "", "poor sending reputation", nil},
		{"b.barracudacentral.org", "127.0.0.3", true, "", "listed (return code 127.0.0.3)", nil},
		{"bl.spamcop.net", "127.0.0.2", true, "", "recipients reported spam", nil},
		{"bl.spamcop.net", "127.0.0.1", false, "", "never a listing", ErrUnexpected},
		{"bl.spamcop.net", "127.255.255.254", false, "", "use your own resolver", ErrRefused},
		{"bl.spamcop.net", "192.0.2.1", false, "", "rewrites NXDOMAIN", ErrBadAnswer},
		{"dnsbl-1.uceprotect.net", "127.0.0.2", true, "", "spam traps", nil},
		{"dnsbl-3.uceprotect.net", "127.0.0.2", true, "", "says nothing about this IP", nil},
		{"multi.uribl.com", "127.0.0.2", true, "black", "black", nil},
		{"multi.uribl.com", "127.0.0.4", true, "grey", "grey", nil},
		{"multi.uribl.com", "127.0.0.8", true, "red", "red", nil},
		{"multi.uribl.com", "127.0.0.14", true, "black+grey+red", "black", nil},
		{"multi.uribl.com", "127.0.0.1", false, "", "URIBL blocks public", ErrRefused},
		{"multi.uribl.com", "127.0.0.16", false, "", "not a URIBL", ErrUnexpected},
		{"hostkarma.junkemailfilter.com", "127.0.0.1", false, "white", "white", nil},
		{"hostkarma.junkemailfilter.com", "127.0.0.2", true, "black", "spam", nil},
		{"hostkarma.junkemailfilter.com", "127.0.0.3", false, "yellow", "mix", nil},
		{"hostkarma.junkemailfilter.com", "127.0.0.4", true, "brown", "mostly spam", nil},
		{"hostkarma.junkemailfilter.com", "127.0.0.5", false, "nobl", "NOBL", nil},
		{"rbl.example.net", "127.0.0.5", true, "", "127.0.0.5", nil},
		{"rbl.example.net", "127.1.2.3", true, "", "127.1.2.3", nil},
	}
	for _, c := range cases {
		t.Run(c.zone+"/"+c.answer, func(t *testing.T) {
			v := zone(t, c.zone).Interpret([]netip.Addr{netip.MustParseAddr(c.answer)})
			if v.Listed != c.listed {
				t.Errorf("listed = %v, want %v (%+v)", v.Listed, c.listed, v)
			}
			if len(v.Codes) != 1 || v.Codes[0] != c.answer {
				t.Errorf("codes = %v", v.Codes)
			}
			if c.err != nil {
				if !errors.Is(v.Err, c.err) {
					t.Fatalf("err = %v, want %v", v.Err, c.err)
				}
				if !strings.Contains(v.Err.Error(), c.want) {
					t.Errorf("error %q does not say %q", v.Err, c.want)
				}
				return
			}
			if v.Err != nil {
				t.Fatalf("unexpected error %v", v.Err)
			}
			if !strings.Contains(v.Meaning, c.want) {
				t.Errorf("meaning %q does not say %q", v.Meaning, c.want)
			}
			if c.list != "" && (len(v.Lists) != 1 || v.Lists[0] != c.list) {
				t.Errorf("lists = %v, want [%s]", v.Lists, c.list)
			}
		})
	}
}

func TestInterpretSeveral(t *testing.T) {
	z := zone(t, "zen.spamhaus.org")
	v := z.Interpret([]netip.Addr{netip.MustParseAddr("127.0.0.4"), netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.10")})
	if !v.Listed || strings.Join(v.Lists, ",") != "XBL,SBL,PBL" || strings.Count(v.Meaning, "; ") != 2 {
		t.Errorf("%+v", v)
	}
	// An error code among listings makes the whole answer an error.
	v = z.Interpret([]netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.255.255.254")})
	if v.Listed || !errors.Is(v.Err, ErrRefused) || v.Lists != nil {
		t.Errorf("%+v", v)
	}
	// NXDOMAIN / NODATA.
	v = z.Interpret(nil)
	if v.Listed || v.Err != nil || len(v.Codes) != 0 {
		t.Errorf("%+v", v)
	}
	// A hijacked answer next to a real one is still an error.
	v = z.Interpret([]netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("2001:db8::1")})
	if v.Listed || !errors.Is(v.Err, ErrBadAnswer) {
		t.Errorf("%+v", v)
	}
}

// FuzzInterpret: no answer set makes Interpret panic, an error verdict is
// never a listing, and a listing's codes are all in 127/8 outside
// 127.255.255.0/24.
func FuzzInterpret(f *testing.F) {
	f.Add("zen.spamhaus.org", []byte{127, 0, 0, 2, 127, 0, 0, 10})
	f.Add("zen.spamhaus.org", []byte{127, 255, 255, 254})
	f.Add("dbl.spamhaus.org", []byte{127, 0, 1, 255})
	f.Add("multi.uribl.com", []byte{127, 0, 0, 1})
	f.Add("multi.uribl.com", []byte{127, 0, 0, 14})
	f.Add("hostkarma.junkemailfilter.com", []byte{127, 0, 0, 1, 127, 0, 0, 4})
	f.Add("bl.spamcop.net", []byte{10, 1, 2, 3})
	f.Add("rbl.example.net", []byte{127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, zoneName string, raw []byte) {
		z, err := ParseZone(zoneName)
		if err != nil {
			return
		}
		var answers []netip.Addr
		for len(raw) >= 4 {
			n := 4
			if raw[0]&0x80 == 0 && len(raw) >= 16 && raw[0] != 127 {
				n = 16
			}
			a, _ := netip.AddrFromSlice(raw[:n])
			answers = append(answers, a)
			raw = raw[n:]
		}
		v := z.Interpret(answers)
		if v.Err != nil && v.Listed {
			t.Fatalf("error verdict is a listing: %+v", v)
		}
		if v.Err != nil {
			var ae *AnswerError
			if !errors.As(v.Err, &ae) || ae.Zone != z.Name {
				t.Fatalf("error %v is not an *AnswerError for %s", v.Err, z.Name)
			}
		}
		if v.Listed {
			for _, a := range answers {
				a = a.Unmap()
				if !a.Is4() || a.As4()[0] != 127 || (a.As4()[1] == 255 && a.As4()[2] == 255) {
					t.Fatalf("listed with answer %v", a)
				}
			}
		}
		if len(v.Codes) != len(answers) {
			t.Fatalf("codes %v for %d answers", v.Codes, len(answers))
		}
	})
}

// FuzzAnswerMessage feeds raw DNS messages, as a resolver could send
// them, through the path lookup uses: unpack, keep the A records,
// interpret. Nothing panics, and an error verdict is never a listing.
func FuzzAnswerMessage(f *testing.F) {
	for _, answers := range [][]string{
		{"127.0.0.2", "127.0.0.10"}, {"127.255.255.254"}, {"192.0.2.1"}, {},
	} {
		m := new(dns.Msg)
		m.SetQuestion("2.0.0.127.zen.spamhaus.org.", dns.TypeA)
		for _, a := range answers {
			rr, _ := dns.NewRR("2.0.0.127.zen.spamhaus.org. 60 IN A " + a)
			m.Answer = append(m.Answer, rr)
		}
		cname, _ := dns.NewRR("2.0.0.127.zen.spamhaus.org. 60 IN CNAME x.example.")
		m.Answer = append(m.Answer, cname)
		b, _ := m.Pack()
		f.Add("zen.spamhaus.org", b)
		f.Add("multi.uribl.com", b)
	}
	f.Fuzz(func(t *testing.T, zoneName string, wire []byte) {
		z, err := ParseZone(zoneName)
		if err != nil {
			return
		}
		m := new(dns.Msg)
		if m.Unpack(wire) != nil {
			return
		}
		as := addrs(m.Answer)
		v := z.Interpret(as)
		if v.Err != nil && v.Listed {
			t.Fatalf("error verdict is a listing: %+v", v)
		}
		if len(v.Codes) != len(as) {
			t.Fatalf("codes %v for %v", v.Codes, as)
		}
	})
}
