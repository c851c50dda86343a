package check

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/miekg/dns"

	"github.com/spf13/cobra"

	"github.com/relayctl/relayctl/cmd/cmdutil"
	"github.com/relayctl/relayctl/pkg/dmarc"
	"github.com/relayctl/relayctl/pkg/report"
)

// DMARCOptions are the inputs of `check dmarc`.
type DMARCOptions struct {
	Factory *cmdutil.Factory
	Domain  string
	Ignore  []string
}

// NewCmdDMARC is `relayctl check dmarc`. runF replaces the run function
// in tests of flag parsing (nil: the real one).
func NewCmdDMARC(f *cmdutil.Factory, runF func(context.Context, *DMARCOptions) error) *cobra.Command {
	opts := &DMARCOptions{Factory: f}
	cmd := &cobra.Command{
		Use:   "dmarc DOMAIN",
		Short: "Check a domain's DMARC policy (RFC 7489 and RFC 9989)",
		Long: `Look up and validate the DMARC policy that applies to mail from DOMAIN.

The record is looked up at _dmarc.DOMAIN and, when absent, at the
organizational domain: by the public suffix list (RFC 7489) and by the DNS
tree walk (RFC 9989, "DMARCbis"). Both are reported, with a warning where
they disagree. External report destinations are checked for their
authorisation record (DOMAIN._report._dmarc.DEST, RFC 7489 §7.1), and the
alignment modes are related to the domain's SPF record.

Finding codes are listed in docs/dmarc.md.`,
		Example: `  relayctl check dmarc example.com
  relayctl check dmarc example.com --json --ignore dmarc.no-rua`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Domain = args[0]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return dmarcRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringSliceVar(&opts.Ignore, "ignore", nil, "drop findings with these codes (CODE[,CODE], prefix.* allowed)")
	return cmd
}

func dmarcRun(ctx context.Context, opts *DMARCOptions) error {
	f := opts.Factory
	domain := dmarc.Normalize(opts.Domain)
	if err := dmDomainArg(domain); err != nil {
		return err
	}
	res, err := f.Resolver()
	if err != nil {
		return err
	}
	rep := report.New("check dmarc", domain)
	result := dmarc.CheckDomain(ctx, res, domain, rep)
	rep.Result = result
	rep.Ignore(opts.Ignore)
	return f.Output(rep, func(w io.Writer, st *cmdutil.Styles) error {
		writeDMARCDomain(w, st, result)
		st.WriteFindings(w, rep.Findings)
		st.WriteSummary(w, rep)
		return nil
	})
}

func writeDMARCDomain(w io.Writer, st *cmdutil.Styles, r *dmarc.DomainResult) {
	fmt.Fprintf(w, "%s\n", st.Heading.Render("DMARC for "+r.Domain))
	if r.Discovery == nil {
		return
	}
	d := r.Discovery
	if d.Policy != nil {
		dmRow(w, st, "record", "_dmarc."+d.Policy.Domain)
		for _, l := range cmdutil.Wrap(d.Policy.Record.Raw, cmdutil.Width-14) {
			dmRow(w, st, "", l)
		}
	} else {
		dmRow(w, st, "record", "none (RFC 7489)")
	}
	if r.Disposition != nil {
		rec := d.Policy.Record
		dmRow(w, st, "policy", fmt.Sprintf("%s (from %s=)", r.Disposition, r.Disposition.Source))
		dmRow(w, st, "alignment", fmt.Sprintf("DKIM %s, SPF %s", rec.ADKIM.Name(), rec.ASPF.Name()))
	}
	dmRow(w, st, "org domain", d.OrgDomain+" (public suffix list)")
	bis := "no record"
	if d.BisPolicy != nil {
		bis = "_dmarc." + d.BisPolicy.Domain
	}
	if r.DispositionRFC9989 != nil {
		bis += ", " + r.DispositionRFC9989.String()
	}
	dmRow(w, st, "RFC 9989", fmt.Sprintf("org domain %s, %s", d.BisOrgDomain, bis))
	for _, dst := range r.Destinations {
		state := "same organization"
		if dst.External {
			switch {
			case dst.Authorized == nil:
				state = "external, not checked"
			case *dst.Authorized:
				state = "external, authorised"
			default:
				state = "external, NOT authorised"
			}
		}
		dmRow(w, st, dst.Tag, fmt.Sprintf("%s (%s)", dst.Address, state))
	}
	fmt.Fprintln(w)
}

// dmRow prints "  label       value" with a fixed label column.
func dmRow(w io.Writer, st *cmdutil.Styles, label, value string) {
	fmt.Fprintf(w, "  %s %s\n", st.Dim.Render(fmt.Sprintf("%-11s", label)), value)
}

// dmDomainArg checks a DOMAIN argument: bad input is a usage error (exit 2).
func dmDomainArg(domain string) error {
	if _, ok := dns.IsDomainName(domain); !ok || domain == "" || strings.ContainsAny(domain, " \t/@:") || len(domain) > 253 {
		return cmdutil.Usagef("%q is not a domain name", domain)
	}
	return nil
}
