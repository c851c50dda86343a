// Command relayctl is an email deliverability toolkit with a built-in
// sender: SPF/DKIM/DMARC audits, DNS blocklist checks, DKIM keys and
// signing, and an authenticated relay with a durable queue.
package main

import (
	"os"

	"github.com/relayctl/relayctl/cmd"
	"github.com/relayctl/relayctl/cmd/cmdutil"
)

//go:generate go run ./cmd/gendocs

func main() {
	os.Exit(cmd.Main(cmdutil.NewFactory(), cmd.Args(os.Args[0], os.Args[1:])))
}
