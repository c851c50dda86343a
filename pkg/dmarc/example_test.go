package dmarc_test

import (
	"fmt"

	"github.com/relayctl/relayctl/pkg/dmarc"
)

func ExampleParse() {
	rec, err := dmarc.Parse("v=DMARC1; p=quarantine; sp=reject; pct=50; rua=mailto:dmarc@example.com!10m; adkim=s")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(rec.Policy, rec.SubdomainPolicy, rec.Percent, rec.ADKIM.Name(), rec.ASPF.Name())
	fmt.Println(rec.RUA[0].Address, rec.RUA[0].MaxSize)
	fmt.Println(len(rec.Problems), "problems")
	// Output:
	// quarantine reject 50 strict relaxed
	// dmarc@example.com 10485760
	// 0 problems
}

func ExampleAligned() {
	org := dmarc.OrganizationalDomain
	fmt.Println(dmarc.Aligned("example.com", "mail.example.com", dmarc.Relaxed, org))
	fmt.Println(dmarc.Aligned("example.com", "mail.example.com", dmarc.Strict, org))
	fmt.Println(dmarc.Aligned("shop.example.co.uk", "other.co.uk", dmarc.Relaxed, org))
	// Output:
	// true
	// false
	// false
}
