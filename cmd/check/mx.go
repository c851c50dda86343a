package check

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/relayctl/relayctl/cmd/cmdutil"
	"github.com/relayctl/relayctl/pkg/dmarc"
	"github.com/relayctl/relayctl/pkg/dnsclient"
	"github.com/relayctl/relayctl/pkg/mx"
	"github.com/relayctl/relayctl/pkg/report"
)

// MXOptions are the inputs of `check mx`.
type MXOptions struct {
	Factory *cmdutil.Factory
	Domain  string
	Ignore  []string
}

// NewCmdMX is `relayctl check mx`.
func NewCmdMX(f *cmdutil.Factory, runF func(context.Context, *MXOptions) error) *cobra.Command {
	opts := &MXOptions{Factory: f}
	cmd := &cobra.Command{
		Use:   "mx DOMAIN",
		Short: "Check a domain's mail exchangers (MX, implicit MX, null MX)",
		Long: `Look up DOMAIN's MX records as a sending MTA does (RFC 5321 §5.1) and
resolve every exchanger: the implicit MX (the domain's own A/AAAA) when
there is no MX, the null MX of a domain that receives no mail (RFC 7505),
MX targets that are aliases (CNAME) or IP addresses, and hosts that do not
resolve.

Finding codes are listed in docs/dmarc.md.`,
		Example: `  relayctl check mx example.com
  relayctl check mx example.com --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Domain = args[0]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return mxRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringSliceVar(&opts.Ignore, "ignore", nil, dmIgnoreUsage)
	return cmd
}

func mxRun(ctx context.Context, opts *MXOptions) error {
	f := opts.Factory
	domain := dmarc.Normalize(opts.Domain)
	if err := dmDomainArg(domain); err != nil {
		return err
	}
	return runCheck(ctx, f, "check mx", domain, opts.Ignore,
		func(ctx context.Context, res dnsclient.Resolver, rep *report.Report) *mx.Result {
			return mx.Check(ctx, res, domain, rep)
		}, writeMX)
}

func writeMX(w io.Writer, st *cmdutil.Styles, r *mx.Result) {
	fmt.Fprintf(w, "%s\n", st.Heading.Render("MX for "+r.Domain))
	switch {
	case r.NullMX && len(r.Hosts) == 0:
		dmRow(w, st, "null MX", "accepts no mail (RFC 7505)")
	case r.Implicit:
		dmRow(w, st, "implicit", "no MX: the domain's own addresses are used")
	}
	for _, h := range r.Hosts {
		name := h.Name
		if h.CNAME != "" {
			name += " → " + h.CNAME
		}
		dmRow(w, st, fmt.Sprintf("%d", h.Preference), name)
		addrs := strings.Join(h.Addresses, ", ")
		if h.Error != "" {
			addrs = st.Fail.Render(h.Error)
		}
		for _, l := range cmdutil.Wrap(addrs, cmdutil.Width-16) {
			dmRow(w, st, "", "  "+l)
		}
	}
	fmt.Fprintln(w)
}
