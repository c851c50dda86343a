package dnsbl

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestParseTarget(t *testing.T) {
	good := []struct {
		in, want string
		size     int
	}{
		{"192.0.2.1", "192.0.2.1", 1},
		{" 2001:DB8::1 ", "2001:db8::1", 1},
		{"::ffff:192.0.2.7", "192.0.2.7", 1},
		{"192.0.2.5/30", "192.0.2.4/30", 4},
		{"10.0.0.0/16", "10.0.0.0/16", 65536},
		{"2001:db8::/120", "2001:db8::/120", 256},
		{"2001:db8::/112", "2001:db8::/112", 65536},
		{"Example.COM.", "example.com", 1},
		{"bücher.example", "xn--bcher-kva.example", 1},
		{"_dmarc.example.com", "_dmarc.example.com", 1},
	}
	for _, g := range good {
		tg, err := ParseTarget(g.in, false)
		if err != nil {
			t.Errorf("%q: %v", g.in, err)
			continue
		}
		got := tg.Domain
		switch {
		case tg.Prefix.IsValid():
			got = tg.Prefix.String()
		case tg.Addr.IsValid():
			got = tg.Addr.String()
		}
		if got != g.want || tg.Size() != g.size || len(tg.Addrs()) != g.size && !tg.IsDomain() {
			t.Errorf("%q: got %q size %d, want %q size %d", g.in, got, tg.Size(), g.want, g.size)
		}
	}
	bad := []struct{ in, want string }{
		{"999.1.1.1", "not a valid IP address"},
		{"1.2.3", "not a valid IP address"},
		{"", "empty target"},
		{"   ", "empty target"},
		{"10.0.0.0/8", "larger than a /16"},
		{"2001:db8::/64", "larger than a /112"},
		{"10.0.0.0/33", "not a CIDR range"},
		{"localhost", "not a fully qualified"},
		{"exa mple.com", "not a valid domain"},
		{"-bad.example.com", "not a valid domain"},
		{"fe80::1%eth0", "zoned"},
		{"2001:db8::g", "not a valid IP address or domain"},
	}
	for _, b := range bad {
		_, err := ParseTarget(b.in, false)
		if err == nil || !errors.Is(err, ErrTarget) || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%q: error %v, want %q", b.in, err, b.want)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: multi-line error", b.in)
		}
	}
	// --force lifts the /16 and /112 limits, not the memory bound.
	if tg, err := ParseTarget("10.0.0.0/14", true); err != nil || tg.Size() != 1<<18 {
		t.Errorf("forced /14: %v %d", err, tg.Size())
	}
	for _, big := range []string{"10.0.0.0/13", "10.0.0.0/8", "2001:db8::/64"} {
		if _, err := ParseTarget(big, true); err == nil || !strings.Contains(err.Error(), "more than") {
			t.Errorf("forced %s: %v", big, err)
		}
	}
}

func TestQueryName(t *testing.T) {
	cases := map[string]string{
		"192.0.2.99":                "99.2.0.192.zen.spamhaus.org",
		"127.0.0.2":                 "2.0.0.127.zen.spamhaus.org",
		"::ffff:192.0.2.99":         "99.2.0.192.zen.spamhaus.org",
		"2001:db8:1:2:3:4:567:89ab": "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.zen.spamhaus.org",
		"2001:db8::1":               "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen.spamhaus.org",
	}
	for in, want := range cases {
		if got := QueryName("zen.spamhaus.org", netip.MustParseAddr(in)); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
	// RFC 5782 §5's IPv6 test point keeps its mapped form.
	if got := nibbles("z.example", netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff, 12: 0x7f, 15: 2})); got != "2.0.0.0.0.0.f.7.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.z.example" {
		t.Errorf("test point: %s", got)
	}
	if got := DomainQueryName("dbl.spamhaus.org", "example.com"); got != "example.com.dbl.spamhaus.org" {
		t.Error(got)
	}
}

func TestReadTargets(t *testing.T) {
	in := "# senders\n192.0.2.1\n\n  example.com   # our domain\n192.0.2.0/31\n"
	ts, err := ReadTargets(strings.NewReader(in), "ips.txt", false)
	if err != nil || len(ts) != 3 || ts[1].Domain != "example.com" || ts[2].Size() != 2 {
		t.Fatalf("%v %+v", err, ts)
	}
	_, err = ReadTargets(strings.NewReader("192.0.2.1\n999.1.1.1\n"), "ips.txt", false)
	if err == nil || !strings.HasPrefix(err.Error(), "ips.txt:2: ") || !errors.Is(err, ErrTarget) {
		t.Errorf("%v", err)
	}
}

func TestZones(t *testing.T) {
	zs := Defaults()
	var names []string
	for _, z := range zs {
		names = append(names, z.Name)
	}
	if strings.Join(names, ",") != strings.Join(DefaultZones, ",") {
		t.Errorf("defaults %v", names)
	}
	for _, dead := range []string{"sorbs", "ahbl", "njabl", "uceprotect", "cyberlogic"} {
		if strings.Contains(strings.Join(DefaultZones, ","), dead) {
			t.Errorf("default set holds %s", dead)
		}
	}
	dqs, err := WithDQSKey(zs, "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
	if err != nil {
		t.Fatal(err)
	}
	if dqs[0].Name != "abcdefghijklmnopqrstuvwxyz.zen.dq.spamhaus.net" || dqs[3].Name != "abcdefghijklmnopqrstuvwxyz.dbl.dq.spamhaus.net" || dqs[1].Name != "b.barracudacentral.org" {
		t.Errorf("DQS names %v %v %v", dqs[0].Name, dqs[3].Name, dqs[1].Name)
	}
	if !dqs[0].Spamhaus() || zs[0].Name != "zen.spamhaus.org" {
		t.Error("DQS zone lost its interpretation, or the input was modified")
	}
	zrd, _ := ParseZones([]string{"zrd.dq.spamhaus.net", "key1.zen.dq.spamhaus.net"})
	if !zrd[0].NeedsDQSKey() || zrd[1].NeedsDQSKey() || zrd[1].Title != "Spamhaus ZEN (DQS)" {
		t.Errorf("%+v", zrd)
	}
	if zrd, _ = WithDQSKey(zrd, "key2"); zrd[0].Name != "key2.zrd.dq.spamhaus.net" || zrd[1].Name != "key1.zen.dq.spamhaus.net" {
		t.Errorf("%+v", zrd)
	}
	if _, err := WithDQSKey(zs, "bad.key"); err == nil {
		t.Error("dotted key accepted")
	}
	for spec, kind := range map[string]Kind{"rbl.example.net": IPList, "rhsbl.example.net:domain": DomainList, "rbl6.example.net:ip6": IPList} {
		z, err := ParseZone(spec)
		if err != nil || z.Kind != kind {
			t.Errorf("%s: %v %v", spec, z.Kind, err)
		}
	}
	for _, bad := range []string{"", "nodot", "zen.spamhaus.org:domain", "x.example:weird", "bad..name"} {
		if _, err := ParseZone(bad); err == nil || !errors.Is(err, ErrZone) {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"192.0.2.1", "2001:db8::/120", "10.0.0.0/8", "999.1.1.1", "1.2.3", "example.com", "bücher.example", "::ffff:1.2.3.4/120", ""} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, force bool) {
		tg, err := ParseTarget(s, force)
		if err != nil {
			if !errors.Is(err, ErrTarget) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("bad error %q", err)
			}
			return
		}
		if tg.Size() > MaxAddresses {
			t.Fatalf("%q: size %d", s, tg.Size())
		}
		if tg.IsDomain() {
			if QueryName := DomainQueryName("dbl.spamhaus.org", tg.Domain); len(QueryName) > 254 {
				t.Fatalf("%q: query name too long", s)
			}
		}
	})
}
