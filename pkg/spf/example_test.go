package spf_test

import (
	"context"
	"fmt"
	"net"

	"github.com/relayctl/relayctl/pkg/dnsclient"
	"github.com/relayctl/relayctl/pkg/dnstest"
	"github.com/relayctl/relayctl/pkg/spf"
)

func ExampleParse() {
	rec, err := spf.Parse("v=spf1 ip4:192.0.2.0/24 include:_spf.example.net -all")
	if err != nil {
		panic(err)
	}
	for _, m := range rec.Mechanisms {
		fmt.Printf("%c %s %q lookup=%v\n", m.Qualifier, m.Kind, m.Domain, m.CausesLookup())
	}
	_, err = spf.Parse("v=spf1 ip4:192.0.2.0/24 inclde:_spf.example.net -all")
	fmt.Println(err)
	// Output:
	// + ip4 "" lookup=false
	// + include "_spf.example.net" lookup=true
	// - all "" lookup=false
	// spf: syntax error in term "inclde:_spf.example.net" at offset 24: unknown mechanism "inclde"
}

func ExampleChecker_CheckHost() {
	srv, err := dnstest.New(`
example.com.      TXT "v=spf1 include:_spf.example.net -all"
_spf.example.net. TXT "v=spf1 ip4:192.0.2.0/24 ~all"
`)
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	r, _ := dnsclient.New([]string{srv.Addr()})
	c := &spf.Checker{Resolver: r, HELO: "mail.example.com"}
	for _, ip := range []string{"192.0.2.25", "198.51.100.1"} {
		o := c.CheckHost(context.Background(), net.ParseIP(ip), "example.com", "bounce@example.com")
		fmt.Println(ip, o.Result, o.Matched, o.Lookups)
	}
	// Output:
	// 192.0.2.25 pass include:_spf.example.net 1
	// 198.51.100.1 fail -all 1
}
