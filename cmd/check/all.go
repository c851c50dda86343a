package check

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/relayctl/relayctl/cmd/blocklist"
	"github.com/relayctl/relayctl/cmd/cmdutil"
	"github.com/relayctl/relayctl/pkg/dkim"
	"github.com/relayctl/relayctl/pkg/dmarc"
	"github.com/relayctl/relayctl/pkg/dnsbl"
	"github.com/relayctl/relayctl/pkg/mx"
	"github.com/relayctl/relayctl/pkg/preflight"
	"github.com/relayctl/relayctl/pkg/rdns"
	"github.com/relayctl/relayctl/pkg/report"
)

// AllOptions are the inputs of `check all`.
type AllOptions struct {
	Factory     *cmdutil.Factory
	Domain      string
	Selectors   []string
	IP          string
	HELO        string
	Ignore      []string
	NoBlocklist bool
	Message     string
	MailFrom    string
}

// NewCmdAll is `relayctl check all`.
func NewCmdAll(f *cmdutil.Factory, runF func(context.Context, *AllOptions) error) *cobra.Command {
	opts := &AllOptions{Factory: f}
	cmd := &cobra.Command{
		Use:   "all DOMAIN [--selector S…] [--ip RELAY_IP] [--helo NAME]",
		Short: "Preflight: SPF, DKIM, DMARC, MX, and for --ip PTR and blocklists",
		Long: `Run every check a receiver applies to mail from DOMAIN, concurrently, and
print one report: SPF (record, lookup budget and, with --ip, whether the
relay IP may send for DOMAIN), DKIM key records for --selector (or common
selectors), DMARC, MX and, with --ip, reverse DNS (FCrDNS, --helo) and the
DNS blocklists (configured with the blocklist.* keys; --no-blocklist skips
them). With --message FILE a sample message is also evaluated for DMARC
alignment (sent from --ip with --mail-from).

This is the preflight for a CI job before a release or a DNS change. The
exit code rolls up: 1 if any check failed (or, with --strict, warned), 3 if
a check could not complete and none failed, 0 otherwise. --ignore drops
accepted finding codes. See docs/ci.md for ready-to-copy CI jobs.`,
		Example: `  relayctl check all example.com
  relayctl check all example.com --selector s1 --ip 192.0.2.25 --helo mail.example.com
  relayctl check all example.com --json --strict --ignore dmarc.no-rua,mx.single-host
  relayctl check all example.com --selector s1 --message sample.eml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Domain = args[0]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return allRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&opts.Selectors, "selector", nil, "DKIM selector(s) to check (default: try common selectors)")
	fl.StringVar(&opts.IP, "ip", "", "the relay's public IP: SPF authorisation, PTR/FCrDNS and blocklists")
	fl.StringVar(&opts.HELO, "helo", "", "the relay's HELO/EHLO name (compared with the PTR)")
	fl.StringSliceVar(&opts.Ignore, "ignore", nil, dmIgnoreUsage)
	fl.BoolVar(&opts.NoBlocklist, "no-blocklist", false, "with --ip: do not ask the DNS blocklists")
	fl.StringVar(&opts.Message, "message", "", "also evaluate this sample message (.eml) for DMARC alignment")
	fl.StringVar(&opts.MailFrom, "mail-from", "", "with --message and --ip: its MAIL FROM (default postmaster@DOMAIN)")
	return cmd
}

func allRun(ctx context.Context, opts *AllOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	f := opts.Factory
	domain := dmarc.Normalize(opts.Domain)
	if err := dmDomainArg(domain); err != nil {
		return err
	}
	po := preflight.Options{Domain: domain, HELO: strings.TrimSuffix(strings.TrimSpace(opts.HELO), "."), Ignore: dmIgnore(f, opts.Ignore), Now: f.Now, MailFrom: strings.TrimSpace(opts.MailFrom)}
	for _, s := range opts.Selectors {
		s = strings.TrimSpace(s)
		if err := dkim.ValidSelector(s); err != nil {
			return cmdutil.Usagef("--selector: %v", err)
		}
		po.Selectors = append(po.Selectors, s)
	}
	if opts.IP != "" {
		if po.IP = net.ParseIP(strings.Trim(opts.IP, "[]")); po.IP == nil {
			return cmdutil.Usagef("--ip: %q is not an IP address", opts.IP)
		}
	}
	if po.HELO != "" && dmDomainArg(po.HELO) != nil {
		return cmdutil.Usagef("--helo: %q is not a host name", opts.HELO)
	}
	if po.MailFrom != "" {
		if opts.Message == "" || po.IP == nil {
			return cmdutil.Usagef("--mail-from needs --message and --ip")
		}
		if err := dmMailFromArg(po.MailFrom, opts.MailFrom); err != nil {
			return err
		}
	}
	if opts.Message != "" {
		msg, err := os.ReadFile(opts.Message)
		if err != nil {
			return cmdutil.Usagef("--message: %v", err)
		}
		if len(msg) > dmMaxMessage {
			return cmdutil.Usagef("--message: %s is larger than %d MiB", opts.Message, dmMaxMessage>>20)
		}
		po.Message = msg
	}
	res, err := f.Resolver()
	if err != nil {
		return err
	}
	po.Resolver = res
	if po.IP != nil && !opts.NoBlocklist {
		zs, err := allBlocklistZones(f)
		if err != nil {
			return err
		}
		po.Blocklist = &dnsbl.Checker{Resolver: res, Zones: zs}
	}

	out := preflight.Run(ctx, po)
	rep := report.New("check all", domain)
	rep.Findings = out.Findings()
	rep.Incomplete = out.Incomplete()
	rep.Result = out
	out.Status = rep.Finish()
	return f.Output(rep, func(w io.Writer, st *cmdutil.Styles) error {
		writeAll(w, st, out)
		st.WriteSummary(w, rep)
		return nil
	})
}

// allBlocklistZones reads the blocklist.* configuration keys that
// `relayctl blocklist` uses (zones, add-zones, dqs-key).
func allBlocklistZones(f *cmdutil.Factory) ([]dnsbl.Zone, error) {
	list := func(key string) []string { return dmSplitList(f.Config.GetStringSlice(key)) }
	specs := dnsbl.DefaultZones
	if z := list(blocklist.KeyZones); len(z) > 0 {
		specs = z
	}
	zs, err := dnsbl.ParseZones(append(append([]string(nil), specs...), list(blocklist.KeyAddZones)...))
	if err != nil {
		return nil, cmdutil.Usagef("%s: %v", blocklist.KeyZones, err)
	}
	zs, err = dnsbl.WithDQSKey(zs, f.Config.GetString(blocklist.KeyDQSKey))
	if err != nil {
		return nil, cmdutil.Usagef("%s: %v", blocklist.KeyDQSKey, err)
	}
	return zs, nil
}

var allTitles = map[string]string{
	preflight.CheckSPF: "SPF", preflight.CheckDKIM: "DKIM", preflight.CheckDMARC: "DMARC", preflight.CheckMX: "MX",
	preflight.CheckPTR: "Reverse DNS", preflight.CheckBlocklist: "Blocklists", preflight.CheckMessage: "Sample message",
}

// writeAll prints one section per check: a heading with its status, a
// short summary, and its findings (info findings only when they are all
// there is).
func writeAll(w io.Writer, st *cmdutil.Styles, r *preflight.Result) {
	for _, c := range r.Checks {
		fmt.Fprintf(w, "%s  %s\n", st.Heading.Render(allTitles[c.Name]), st.Status(c.Status))
		for _, l := range allSummary(c) {
			for i, part := range cmdutil.Wrap(l, cmdutil.Width-4) {
				if i > 0 {
					part = "  " + part
				}
				fmt.Fprintf(w, "  %s\n", part)
			}
		}
		var shown []report.Finding
		for _, fd := range c.Findings {
			if fd.Severity != report.SeverityInfo {
				shown = append(shown, fd)
			}
		}
		st.WriteFindings(w, shown)
		fmt.Fprintln(w)
	}
}

func allSummary(c *preflight.Check) []string {
	switch v := c.Result.(type) {
	case *preflight.SPFResult:
		if v.Record == "" {
			return []string{"no SPF record"}
		}
		out := []string{v.Record, fmt.Sprintf("%d of 10 DNS-querying terms, %d of 2 void lookups", v.Lookups, v.VoidLookups)}
		if v.Evaluation != nil {
			out = append(out, fmt.Sprintf("relay IP: %s", v.Evaluation.Result))
		}
		return out
	case *preflight.DKIMResult:
		var out []string
		for _, s := range v.Selectors {
			state := "key found"
			if !s.Found {
				state = "no key"
			}
			out = append(out, fmt.Sprintf("%s: %s", s.Name, state))
		}
		if len(out) == 0 && v.Discovered {
			out = append(out, fmt.Sprintf("none of %d common selectors found", len(v.Tried)))
		}
		return out
	case *dmarc.DomainResult:
		if v.Discovery == nil || (v.Policy == nil && v.BisPolicy == nil) {
			return []string{"no policy"}
		}
		rec := v.Policy
		if rec == nil {
			rec = v.BisPolicy
		}
		out := []string{"_dmarc." + rec.Domain + ": " + rec.Record.Raw}
		if v.Disposition != nil {
			out = append(out, "failing mail: "+v.Disposition.String())
		}
		return out
	case *mx.Result:
		switch {
		case v.NullMX && len(v.Hosts) == 0:
			return []string{"null MX: accepts no mail"}
		}
		var out []string
		for _, h := range v.Hosts {
			addrs := strings.Join(h.Addresses, ", ")
			if h.Error != "" {
				addrs = h.Error
			}
			out = append(out, fmt.Sprintf("%d %s: %s", h.Preference, h.Name, addrs))
		}
		return out
	case *rdns.Result:
		var names []string
		for _, n := range v.Names {
			names = append(names, n.Name)
		}
		if len(names) == 0 {
			return []string{v.IP + ": no PTR"}
		}
		s := fmt.Sprintf("%s → %s (FCrDNS %v)", v.IP, strings.Join(names, ", "), map[bool]string{true: "passes", false: "fails"}[v.FCrDNS])
		return []string{s}
	case *dnsbl.Result:
		if v == nil {
			return nil
		}
		return []string{fmt.Sprintf("%d lists asked: %d listed, %d clean, %d errors", v.Summary.Queries, v.Summary.Listed, v.Summary.Clean, v.Summary.Errors)}
	case *dmarc.MessageResult:
		if v == nil {
			return nil
		}
		s := fmt.Sprintf("From %s: dmarc=%s, disposition %s", v.FromDomain, v.DMARC, v.Disposition)
		if len(v.AlignedBy) > 0 {
			s += " (aligned " + strings.Join(v.AlignedBy, " and ") + ")"
		}
		return []string{s}
	}
	return nil
}
