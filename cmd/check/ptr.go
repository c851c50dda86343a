package check

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/spf13/cobra"

	"github.com/relayctl/relayctl/cmd/cmdutil"
	"github.com/relayctl/relayctl/pkg/dnsclient"
	"github.com/relayctl/relayctl/pkg/rdns"
	"github.com/relayctl/relayctl/pkg/report"
)

// PTROptions are the inputs of `check ptr`.
type PTROptions struct {
	Factory *cmdutil.Factory
	IP      net.IP
	HELO    string
	Ignore  []string
}

// NewCmdPTR is `relayctl check ptr`.
func NewCmdPTR(f *cmdutil.Factory, runF func(context.Context, *PTROptions) error) *cobra.Command {
	opts := &PTROptions{Factory: f}
	cmd := &cobra.Command{
		Use:   "ptr IP",
		Short: "Check an IP's reverse DNS and forward confirmation (FCrDNS)",
		Long: `Look up the PTR record of IP (the relay's public address), check that the
PTR name resolves back to IP (forward-confirmed reverse DNS, the iprev
check of RFC 8601) and, with --helo, that the name the relay announces in
HELO/EHLO is that PTR name and resolves to IP. Receivers look at this
before anything else.

Finding codes are listed in docs/dmarc.md.`,
		Example: `  relayctl check ptr 192.0.2.10 --helo mail.example.com
  relayctl check ptr 2001:db8::25 --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.IP = net.ParseIP(args[0])
			if opts.IP == nil {
				return cmdutil.Usagef("%q is not an IP address", args[0])
			}
			if opts.HELO != "" {
				if err := dmDomainArg(strings.TrimSuffix(opts.HELO, ".")); err != nil {
					return cmdutil.Usagef("--helo: %q is not a host name", opts.HELO)
				}
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return ptrRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.HELO, "helo", "", "the HELO/EHLO name the relay announces")
	cmd.Flags().StringSliceVar(&opts.Ignore, "ignore", nil, dmIgnoreUsage)
	return cmd
}

func ptrRun(ctx context.Context, opts *PTROptions) error {
	f := opts.Factory
	return runCheck(ctx, f, "check ptr", opts.IP.String(), opts.Ignore,
		func(ctx context.Context, res dnsclient.Resolver, rep *report.Report) *rdns.Result {
			return rdns.Check(ctx, res, opts.IP, opts.HELO, rep)
		}, writePTR)
}

func writePTR(w io.Writer, st *cmdutil.Styles, r *rdns.Result) {
	fmt.Fprintf(w, "%s\n", st.Heading.Render("Reverse DNS for "+r.IP))
	if len(r.Names) == 0 {
		dmRow(w, st, "PTR", "none")
	}
	for _, n := range r.Names {
		state := st.Fail.Render("does not resolve back")
		if n.Confirmed {
			state = st.Pass.Render("confirmed")
		}
		dmRow(w, st, "PTR", fmt.Sprintf("%s (%s)", n.Name, state))
		if len(n.Addresses) > 0 {
			dmRow(w, st, "", "  → "+strings.Join(n.Addresses, ", "))
		}
	}
	if r.HELO != "" {
		state := "matches PTR"
		if !r.HELOMatches {
			state = "differs from PTR"
		}
		if !r.HELOResolves {
			state += ", does not resolve to the IP"
		}
		dmRow(w, st, "HELO", fmt.Sprintf("%s (%s)", r.HELO, state))
	}
	fmt.Fprintln(w)
}
