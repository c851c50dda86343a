package dkim_test

import (
	"strings"
	"testing"

	"github.com/relayctl/relayctl/pkg/dkim"
	"github.com/relayctl/relayctl/pkg/dnsclient"
	"github.com/relayctl/relayctl/pkg/dnstest"
)

// zoneTXT renders a TXT record for a zone file, split into ≤255-byte
// quoted strings.
func zoneTXT(name, value string) string {
	var q []string
	for _, s := range dkim.SplitTXT(value) {
		q = append(q, `"`+strings.ReplaceAll(s, `"`, `\"`)+`"`)
	}
	return name + ". IN TXT " + strings.Join(q, " ") + "\n"
}

// serve starts a test DNS server with zone and returns a client for it.
func serve(t testing.TB, zone string) (*dnstest.Server, *dnsclient.Client) {
	t.Helper()
	srv := dnstest.Start(t, zone)
	return srv, clientFor(t, srv)
}

// clientFor returns a client asking srv.
func clientFor(t testing.TB, srv *dnstest.Server) *dnsclient.Client {
	t.Helper()
	c, err := dnsclient.New([]string{srv.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
