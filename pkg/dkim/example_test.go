package dkim_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"

	"github.com/relayctl/relayctl/pkg/dkim"
)

// The record for RFC 8463's Ed25519 example key (A.1 seed, A.2 record).
func ExampleNewRecord() {
	seed, _ := base64.StdEncoding.DecodeString("nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=")
	key := ed25519.NewKeyFromSeed(seed)
	rec, _ := dkim.NewRecord("brisbane", "football.example.com", key.Public())
	fmt.Println(rec.Name)
	fmt.Println(rec.Value)
	fmt.Println(rec.ZoneLine)
	// Output:
	// brisbane._domainkey.football.example.com
	// v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=
	// brisbane._domainkey.football.example.com. IN TXT "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
}

func ExampleParseTagList() {
	tags, err := dkim.ParseTagList("v=DKIM1; k=rsa;\r\n\tt=y:s; p=MIGf MA0G")
	if err != nil {
		panic(err)
	}
	for _, t := range tags {
		fmt.Printf("%s=%q\n", t.Name, t.Value)
	}
	_, err = dkim.ParseTagList("v=DKIM1; v=DKIM1")
	fmt.Println(err)
	// Output:
	// v="DKIM1"
	// k="rsa"
	// t="y:s"
	// p="MIGf MA0G"
	// tag "v" at byte 9: duplicate tag
}

func ExampleAuditKeyRecord() {
	_, findings := dkim.AuditKeyRecord("v=DKIM1; k=rsa; t=y; p=")
	for _, f := range findings {
		fmt.Println(f.Severity, f.Code)
	}
	// Output:
	// warning dkim.testing
	// error dkim.key-revoked
}
