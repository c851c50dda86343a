package dnsbl_test

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/relayctl/relayctl/pkg/dnsbl"
	"github.com/relayctl/relayctl/pkg/dnsclient"
	"github.com/relayctl/relayctl/pkg/dnstest"
)

func ExampleQueryName() {
	fmt.Println(dnsbl.QueryName("zen.spamhaus.org", netip.MustParseAddr("192.0.2.99")))
	fmt.Println(dnsbl.QueryName("zen.spamhaus.org", netip.MustParseAddr("2001:db8::1")))
	// Output:
	// 99.2.0.192.zen.spamhaus.org
	// 1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen.spamhaus.org
}

func ExampleZone_Interpret() {
	zen, _ := dnsbl.Known("zen.spamhaus.org")
	v := zen.Interpret([]netip.Addr{netip.MustParseAddr("127.0.0.10")})
	fmt.Println(v.Listed, v.Lists)
	v = zen.Interpret([]netip.Addr{netip.MustParseAddr("127.255.255.254")})
	fmt.Println(v.Listed, v.Err)
	// Output:
	// true [PBL]
	// false zen.spamhaus.org answered 127.255.255.254: query refused: it came through a public/open resolver (or one without attributable reverse DNS); use your own resolver or a Spamhaus DQS key (--dqs-key)
}

func ExampleChecker_Check() {
	srv, err := dnstest.New(`
2.0.0.127.zen.spamhaus.org. A   127.0.0.2
2.0.0.127.zen.spamhaus.org. TXT "https://check.spamhaus.org/sbl/query/SBL2"
`)
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	r, _ := dnsclient.New([]string{srv.Addr()})
	zones, _ := dnsbl.ParseZones([]string{"zen.spamhaus.org", "bl.spamcop.net"})
	target, _ := dnsbl.ParseTarget("127.0.0.2", false)
	res := (&dnsbl.Checker{Resolver: r, Zones: zones}).Check(context.Background(), []dnsbl.Target{target})
	for _, q := range res.Queries {
		fmt.Printf("%s %s %v %q\n", q.Zone, q.Status(), q.Lists, q.Reason)
	}
	// Output:
	// zen.spamhaus.org listed [SBL] "https://check.spamhaus.org/sbl/query/SBL2"
	// bl.spamcop.net clean [] ""
}
