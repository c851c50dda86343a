// Package dkim holds `relayctl dkim …`: key generation and message
// signing with pkg/dkim (RFC 6376, RFC 8463).
package dkim

import (
	"github.com/spf13/cobra"

	"github.com/relayctl/relayctl/cmd/cmdutil"
)

// NewCmdDKIM is `relayctl dkim`.
func NewCmdDKIM(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dkim",
		Short: "Generate DKIM keys and sign messages",
		Long: `Generate DKIM keys with the DNS record to publish, and sign messages with
the same code the relay uses at submission (RFC 6376, Ed25519 per RFC 8463).

To audit published keys or verify a signed message, use 'relayctl check dkim'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(NewCmdKeygen(f, nil), NewCmdSign(f, nil))
	return cmd
}
