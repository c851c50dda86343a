// Package check holds the `relayctl check …` commands: audits of a
// domain's mail authentication and DNS as receivers judge them.
package check

import (
	"github.com/spf13/cobra"

	"github.com/relayctl/relayctl/cmd/cmdutil"
)

// NewCmdCheck is `relayctl check`.
func NewCmdCheck(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Audit a domain's SPF, DKIM, DMARC, MX and reverse DNS",
		Long: `Audit a domain's mail authentication and DNS the way receivers judge them.

Every check prints findings with stable codes (e.g. spf.lookup-limit) and
exits 0 (pass), 1 (a check failed), 2 (bad input) or 3 (could not complete).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(NewCmdDMARC(f, nil))
	cmd.AddCommand(NewCmdMX(f, nil))
	cmd.AddCommand(NewCmdPTR(f, nil))
	cmd.AddCommand(NewCmdAll(f, nil))
	cmd.AddCommand(NewCmdDKIM(f, nil))
	cmd.AddCommand(NewCmdSPF(f, nil))
	return cmd
}
