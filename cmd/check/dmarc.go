package check

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"github.com/miekg/dns"

	"github.com/spf13/cobra"

	"github.com/relayctl/relayctl/cmd/cmdutil"
	"github.com/relayctl/relayctl/pkg/dmarc"
	"github.com/relayctl/relayctl/pkg/dnsclient"
	"github.com/relayctl/relayctl/pkg/report"
)

// DMARCOptions are the inputs of `check dmarc`.
type DMARCOptions struct {
	Factory *cmdutil.Factory
	Domain  string
	Ignore  []string

	// --message mode: evaluate a message as a receiver does.
	Message    string // file, "-" for stdin
	IP         string
	MailFrom   string
	HELO       string
	AuthServID string
}

// NewCmdDMARC is `relayctl check dmarc`. runF replaces the run function
// in tests of flag parsing (nil: the real one).
func NewCmdDMARC(f *cmdutil.Factory, runF func(context.Context, *DMARCOptions) error) *cobra.Command {
	opts := &DMARCOptions{Factory: f}
	cmd := &cobra.Command{
		Use:   "dmarc DOMAIN | --message FILE [--ip IP --mail-from ADDR --helo NAME]",
		Short: "Check a domain's DMARC policy (RFC 7489 and RFC 9989)",
		Long: `Look up and validate the DMARC policy that applies to mail from DOMAIN.

The record is looked up at _dmarc.DOMAIN and, when absent, at the
organizational domain: by the public suffix list (RFC 7489) and by the DNS
tree walk (RFC 9989, "DMARCbis"). Both are reported, with a warning where
they disagree. External report destinations are checked for their
authorisation record (DOMAIN._report._dmarc.DEST, RFC 7489 §7.1), and the
alignment modes are related to the domain's SPF record.

With --message FILE (an .eml; "-" reads stdin) the message is evaluated the
way a receiver does: the RFC 5322.From domain, its DKIM signatures, SPF
check_host() for --ip and the --mail-from domain (the --helo name for the
null sender), identifier alignment, the DMARC verdict and the disposition,
and the Authentication-Results header (RFC 8601) a receiver would add.
Exit 1 when the message fails DMARC (or has no policy), 0 when it passes.

Finding codes are listed in docs/dmarc.md.`,
		Example: `  relayctl check dmarc example.com
  relayctl check dmarc example.com --json --ignore dmarc.no-rua
  relayctl check dmarc --message invoice.eml
  relayctl check dmarc --message invoice.eml --ip 192.0.2.25 --mail-from bounce@example.com --helo mail.example.com`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.Domain = args[0]
			}
			switch {
			case opts.Message == "" && opts.Domain == "":
				return cmdutil.Usagef("give a DOMAIN or --message FILE")
			case opts.Message != "" && opts.Domain != "":
				return cmdutil.Usagef("give either a DOMAIN or --message FILE, not both")
			case opts.Message == "" && (opts.IP != "" || opts.MailFrom != "" || opts.HELO != ""):
				return cmdutil.Usagef("--ip, --mail-from and --helo need --message")
			case opts.IP == "" && (opts.MailFrom != "" || opts.HELO != ""):
				return cmdutil.Usagef("--mail-from and --helo need --ip (SPF is evaluated for the client IP)")
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			if opts.Message != "" {
				return dmarcMessageRun(cmd.Context(), opts)
			}
			return dmarcRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&opts.Ignore, "ignore", nil, dmIgnoreUsage)
	fl.StringVar(&opts.Message, "message", "", "evaluate this message file (.eml; - for stdin) as a receiver does")
	fl.StringVar(&opts.IP, "ip", "", "with --message: the client IP the message came from (runs SPF)")
	fl.StringVar(&opts.MailFrom, "mail-from", "", "with --ip: the MAIL FROM (return-path) address; empty = null sender")
	fl.StringVar(&opts.HELO, "helo", "", "with --ip: the HELO/EHLO name (SPF checks it for the null sender)")
	fl.StringVar(&opts.AuthServID, "authserv-id", "relayctl", "with --message: the receiver name in the Authentication-Results header")
	return cmd
}

func dmarcRun(ctx context.Context, opts *DMARCOptions) error {
	f := opts.Factory
	domain := dmarc.Normalize(opts.Domain)
	if err := dmDomainArg(domain); err != nil {
		return err
	}
	return runCheck(ctx, f, "check dmarc", domain, opts.Ignore,
		func(ctx context.Context, res dnsclient.Resolver, rep *report.Report) *dmarc.DomainResult {
			return dmarc.CheckDomain(ctx, res, domain, rep)
		}, writeDMARCDomain)
}

func dmarcMessageRun(ctx context.Context, opts *DMARCOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	f := opts.Factory
	mo := dmarc.MessageOptions{MailFrom: strings.TrimSpace(opts.MailFrom), HELO: strings.TrimSuffix(strings.TrimSpace(opts.HELO), "."), AuthServID: opts.AuthServID, Now: f.Now}
	if opts.IP != "" {
		if mo.IP = net.ParseIP(strings.Trim(opts.IP, "[]")); mo.IP == nil {
			return cmdutil.Usagef("--ip: %q is not an IP address", opts.IP)
		}
	}
	if mo.MailFrom != "" {
		if err := dmMailFromArg(mo.MailFrom, opts.MailFrom); err != nil {
			return err
		}
	}
	if mo.HELO != "" && dmDomainArg(mo.HELO) != nil {
		return cmdutil.Usagef("--helo: %q is not a host name", opts.HELO)
	}
	if mo.AuthServID == "" || strings.ContainsAny(mo.AuthServID, " \t;\r\n") {
		return cmdutil.Usagef("--authserv-id: %q is not a host name", opts.AuthServID)
	}
	var (
		msg []byte
		err error
	)
	target := opts.Message
	if opts.Message == "-" {
		msg, err = io.ReadAll(io.LimitReader(f.IO.In, dmMaxMessage+1))
		target = "stdin"
	} else {
		var fh *os.File
		if fh, err = os.Open(opts.Message); err == nil {
			msg, err = io.ReadAll(io.LimitReader(fh, dmMaxMessage+1))
			fh.Close()
		}
	}
	if err != nil {
		return cmdutil.Usagef("--message: %v", err)
	}
	if len(msg) > dmMaxMessage {
		return cmdutil.Usagef("--message: %s is larger than %d MiB", target, dmMaxMessage>>20)
	}
	res, err := f.Resolver()
	if err != nil {
		return err
	}
	rep := report.New("check dmarc", target)
	result, err := dmarc.CheckMessage(ctx, res, msg, mo, rep)
	if err != nil {
		return cmdutil.Usagef("--message %s: %v", target, err)
	}
	rep.Result = result
	rep.Ignore(dmIgnore(f, opts.Ignore))
	return f.Output(rep, func(w io.Writer, st *cmdutil.Styles) error {
		writeDMARCMessage(w, st, target, result)
		st.WriteFindings(w, rep.Findings)
		st.WriteSummary(w, rep)
		return nil
	})
}

// dmMaxMessage bounds --message input (receivers commonly stop at tens
// of MiB; a DMARC check needs far less).
const dmMaxMessage = 64 << 20

func writeDMARCMessage(w io.Writer, st *cmdutil.Styles, target string, r *dmarc.MessageResult) {
	head := "DMARC for " + target
	if r.From != "" {
		head += " (From " + r.From + ")"
	}
	fmt.Fprintf(w, "%s\n", st.Heading.Render(head))
	verdict := strings.ToUpper(r.DMARC)
	switch r.DMARC {
	case dmarc.ResultPass:
		verdict = st.Pass.Render(verdict)
		if len(r.AlignedBy) > 0 {
			verdict += " (aligned " + strings.Join(r.AlignedBy, " and ") + ")"
		}
	case dmarc.ResultNone:
		verdict = st.Warn.Render(verdict) + " (no policy)"
	default:
		verdict = st.Fail.Render(verdict)
	}
	dmRow(w, st, "verdict", verdict)
	if r.RecordDomain != "" {
		dmRow(w, st, "policy", fmt.Sprintf("%s (%s=) from _dmarc.%s; adkim=%s aspf=%s", r.Policy, r.PolicySource, r.RecordDomain, r.ADKIM, r.ASPF))
	}
	disp := r.Disposition
	if r.DMARC == dmarc.ResultFail && r.Percent < 100 {
		disp += fmt.Sprintf(" for %d%% of such mail (pct=%d)", r.Percent, r.Percent)
	}
	dmRow(w, st, "disposition", disp)
	dmRow(w, st, "RFC 9989", fmt.Sprintf("%s, disposition %s", r.DMARCRFC9989, r.DispositionRFC9989))
	aligned := func(ok bool) string {
		if ok {
			return st.Pass.Render("aligned")
		}
		return st.Dim.Render("not aligned")
	}
	if r.SPF.Evaluated {
		dmRow(w, st, "SPF", fmt.Sprintf("%s for %s (%s), %s", r.SPF.Result, r.SPF.Domain, r.SPF.Scope, aligned(r.SPF.Aligned)))
	} else {
		dmRow(w, st, "SPF", st.Dim.Render("not evaluated (no --ip)"))
	}
	if len(r.DKIM) == 0 {
		dmRow(w, st, "DKIM", "no signature")
	}
	for _, d := range r.DKIM {
		dmRow(w, st, "DKIM", fmt.Sprintf("%s d=%s s=%s, %s", d.Result, d.Domain, d.Selector, aligned(d.Aligned)))
	}
	fmt.Fprintln(w)
	// Folded at spaces (RFC 5322 §2.2.3) so it can be pasted as is.
	for i, l := range cmdutil.Wrap(r.AuthenticationResults, cmdutil.Width-4) {
		if i > 0 {
			l = "    " + l
		}
		fmt.Fprintln(w, l)
	}
	fmt.Fprintln(w)
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

const dmIgnoreUsage = "drop findings with these codes (CODE[,CODE], prefix.* allowed; also config key ignore, RELAYCTL_IGNORE)"

// dmIgnore returns the finding codes to drop: --ignore, else the
// "ignore" configuration key (config file or RELAYCTL_IGNORE, bound to
// the flag by the root command), commas or spaces separating codes.
func dmIgnore(f *cmdutil.Factory, flag []string) []string {
	vals := flag
	if len(vals) == 0 {
		vals = f.Config.GetStringSlice("ignore")
	}
	return dmSplitList(vals)
}

// dmSplitList splits each value at commas and white space (a list given
// in one flag value, config string or environment variable).
func dmSplitList(vals []string) []string {
	var out []string
	for _, v := range vals {
		out = append(out, strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })...)
	}
	return out
}

// dmMailFromArg checks a --mail-from address (addr, trimmed from raw): a
// local part and a domain after the last "@".
func dmMailFromArg(addr, raw string) error {
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || dmDomainArg(dmarc.Normalize(addr[at+1:])) != nil {
		return cmdutil.Usagef("--mail-from: %q is not an email address", raw)
	}
	return nil
}

// dmDomainArg checks a DOMAIN argument: bad input is a usage error (exit 2).
func dmDomainArg(domain string) error {
	if _, ok := dns.IsDomainName(domain); !ok || domain == "" || strings.ContainsAny(domain, " \t/@:") || len(domain) > 253 {
		return cmdutil.Usagef("%q is not a domain name", domain)
	}
	return nil
}
