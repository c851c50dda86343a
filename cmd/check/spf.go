package check

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/charmbracelet/lipgloss"
	"github.com/spf13/cobra"

	"github.com/relayctl/relayctl/cmd/cmdutil"
	"github.com/relayctl/relayctl/pkg/report"
	"github.com/relayctl/relayctl/pkg/spf"
)

// SPFOptions are the inputs of `relayctl check spf`.
type SPFOptions struct {
	F        *cmdutil.Factory
	Domain   string
	IP       string
	Sender   string
	HELO     string
	Receiver string
}

// NewCmdSPF is `relayctl check spf`. runF replaces the run function in
// tests of flag parsing (nil: spfRun).
func NewCmdSPF(f *cmdutil.Factory, runF func(*SPFOptions) error) *cobra.Command {
	opts := &SPFOptions{F: f}
	cmd := &cobra.Command{
		Use:   "spf [DOMAIN]",
		Short: "Audit a domain's SPF record and its DNS lookup budget (RFC 7208)",
		Long: `Fetch DOMAIN's SPF record, parse it to the full RFC 7208 grammar, and walk
the whole include/redirect tree, showing what each record costs of the limit
of 10 DNS-querying terms and 2 void lookups (RFC 7208 §4.6.4). Record problems
are reported as findings with stable spf.* codes (see docs/spf.md).

With --ip, also run check_host() for that client address and report the
result (pass, fail, softfail, neutral, none, permerror, temperror), the term
that matched and the exp= explanation. DOMAIN may then be omitted: it is taken
from --sender, or from --helo when there is no sender.

Exit codes: 0 pass (warnings allowed), 1 an error finding (with --strict, a
warning too; with --ip, a fail or permerror), 2 invalid domain, IP or
usage, 3 DNS did not answer (timeout, SERVFAIL, unreachable).`,
		Example: `  relayctl check spf example.com
  relayctl check spf example.com --json
  relayctl check spf --ip 192.0.2.10 --sender bounce@example.com
  relayctl check spf example.com --ip 2001:db8::25 --helo mail.example.com
  relayctl check spf example.com --resolver 127.0.0.1:5353`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.Domain = args[0]
			}
			if runF != nil {
				return runF(opts)
			}
			return spfRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.IP, "ip", "", "evaluate check_host() for this client IP address")
	fl.StringVar(&opts.Sender, "sender", "", "MAIL FROM address for --ip (%{s}, %{l}, %{o})")
	fl.StringVar(&opts.HELO, "helo", "", "HELO/EHLO name for --ip (%{h}; the domain when there is no sender)")
	fl.StringVar(&opts.Receiver, "receiver", "", "receiving host name for --ip (%{r} in explanations)")
	return cmd
}

// spfResult is the JSON "result" of check spf.
type spfResult struct {
	Domain      string         `json:"domain"`
	Record      string         `json:"record"`
	Lookups     int            `json:"lookups"`
	VoidLookups int            `json:"void_lookups"`
	Tree        *spf.Node      `json:"tree"`
	Evaluation  *spfEvaluation `json:"evaluation,omitempty"`
}

// spfEvaluation is check_host()'s outcome for --ip.
type spfEvaluation struct {
	IP          string     `json:"ip"`
	Domain      string     `json:"domain"`
	Sender      string     `json:"sender,omitempty"`
	HELO        string     `json:"helo,omitempty"`
	Result      spf.Result `json:"result"`
	Mechanism   string     `json:"mechanism"`
	MatchedIn   string     `json:"matched_in,omitempty"`
	Explanation string     `json:"explanation"`
	Lookups     int        `json:"lookups"`
	VoidLookups int        `json:"void_lookups"`
	Error       string     `json:"error,omitempty"`
	Trace       []spf.Step `json:"trace"`
}

func spfRun(ctx context.Context, o *SPFOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	var ip net.IP
	if o.IP != "" {
		if ip = net.ParseIP(strings.Trim(o.IP, "[]")); ip == nil {
			return cmdutil.Usagef("--ip: invalid IP address %q", o.IP)
		}
	} else if o.Sender != "" || o.HELO != "" || o.Receiver != "" {
		return cmdutil.Usagef("--sender, --helo and --receiver need --ip")
	}
	if o.Sender != "" && strings.Count(o.Sender, "@") > 0 && !spf.ValidDomain(spf.SenderDomain(o.Sender, "")) {
		return cmdutil.Usagef("--sender: invalid domain in %q", o.Sender)
	}
	domain := strings.TrimSuffix(strings.TrimSpace(o.Domain), ".")
	if domain == "" {
		if ip == nil {
			return cmdutil.Usagef("DOMAIN is required (or --ip with --sender or --helo)")
		}
		domain = spf.SenderDomain(o.Sender, o.HELO)
		if domain == "" {
			return cmdutil.Usagef("DOMAIN is required with --ip unless --sender or --helo names it")
		}
	}
	if !spf.ValidDomain(domain) {
		return cmdutil.Usagef("invalid domain name %q", domain)
	}

	res, err := o.F.Resolver()
	if err != nil {
		return err
	}
	rep := report.New("check spf", domain)
	out := &spfResult{Domain: domain}
	rep.Result = out

	auditor := &spf.Auditor{Resolver: res}
	audit, err := auditor.AuditInto(ctx, domain, rep)
	if audit != nil {
		out.Record, out.Lookups, out.VoidLookups, out.Tree = audit.Record, audit.Lookups, audit.VoidLookups, audit.Tree
	}

	if ip != nil && err == nil {
		c := &spf.Checker{Resolver: res, HELO: o.HELO, Receiver: o.Receiver, Now: o.F.Now}
		oc := c.CheckHost(ctx, ip, domain, o.Sender)
		ev := &spfEvaluation{
			IP: ip.String(), Domain: domain, Sender: o.Sender, HELO: o.HELO,
			Result: oc.Result, Mechanism: oc.Matched, Explanation: oc.Explanation,
			Lookups: oc.Lookups, VoidLookups: oc.VoidLookups, Trace: oc.Trace,
		}
		if ev.Trace == nil {
			ev.Trace = []spf.Step{}
		}
		if oc.Matched != "" {
			ev.MatchedIn = oc.Domain
		}
		if oc.Err != nil {
			ev.Error = oc.Err.Error()
		}
		out.Evaluation = ev
		f, incomplete := spf.OutcomeFinding(ip, domain, oc)
		rep.Findings = append(rep.Findings, f)
		rep.Incomplete = rep.Incomplete || incomplete
	}
	return o.F.Output(rep, func(w io.Writer, st *cmdutil.Styles) error {
		return writeSPFHuman(w, st, rep, out)
	})
}

func writeSPFHuman(w io.Writer, st *cmdutil.Styles, rep *report.Report, r *spfResult) error {
	fmt.Fprintf(w, "%s %s  %s\n", st.Heading.Render("SPF"), st.Bold.Render(r.Domain), st.Status(rep.Status))
	if r.Record != "" {
		lines := cmdutil.Wrap(r.Record, cmdutil.Width-10)
		for i, l := range lines {
			label := ""
			if i == 0 {
				label = "record"
			}
			fmt.Fprintf(w, "  %-8s%s\n", label, l)
		}
	}
	if r.Tree != nil && r.Record != "" && r.Tree.Error == "" {
		fmt.Fprintf(w, "  %-8s%s of %d DNS-querying terms, %s of %d void lookups\n", "budget",
			budget(st, r.Lookups, spf.DefaultMaxLookups), spf.DefaultMaxLookups,
			budget(st, r.VoidLookups, spf.DefaultMaxVoid), spf.DefaultMaxVoid)
		fmt.Fprintln(w)
		fmt.Fprintln(w, st.Bold.Render("Lookup tree")+st.Dim.Render("  (cost = terms in that record, total = with its includes)"))
		writeNode(w, st, r.Tree, "", "", true)
	}
	if ev := r.Evaluation; ev != nil {
		fmt.Fprintln(w)
		fmt.Fprintf(w, "%s %s\n", st.Bold.Render("check_host("+ev.IP+", "+ev.Domain+")"), resultWord(st, ev.Result))
		label := "matched"
		if ev.Result == spf.PermError || ev.Result == spf.TempError {
			label = "stopped at"
		}
		if ev.Mechanism != "" {
			fmt.Fprintf(w, "  %-12s%s %s\n", label, ev.Mechanism, st.Dim.Render("in "+ev.MatchedIn))
		} else {
			fmt.Fprintf(w, "  %-12s%s\n", "matched", st.Dim.Render("nothing (default result)"))
		}
		evalText(w, "explanation", ev.Explanation)
		evalText(w, "reason", ev.Error)
		fmt.Fprintf(w, "  %-12s%d DNS-querying terms, %d void\n", "lookups", ev.Lookups, ev.VoidLookups)
		if len(ev.Trace) > 0 {
			fmt.Fprintf(w, "  %s\n", "evaluated")
			for _, step := range ev.Trace {
				term := step.Term
				if step.Depth == 0 && len(ev.Trace) > 0 && ev.Trace[0].Domain != step.Domain {
					term += " (" + step.Domain + ")"
				}
				res := step.Result
				switch res {
				case "match":
					res = st.Pass.Render(res)
				case "no match", "follow":
					res = st.Dim.Render(res)
				default:
					res = st.Fail.Render(res)
				}
				line(w, st, "  "+strings.Repeat("  ", step.Depth), term, "", res)
			}
		}
	}
	if len(rep.Findings) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, st.Bold.Render("Findings"))
		st.WriteFindings(w, rep.Findings)
	}
	return nil
}

// evalText prints a wrapped text of the check_host() section with its
// label on the first line; nothing when text is empty.
func evalText(w io.Writer, label, text string) {
	if text == "" {
		return
	}
	for i, l := range cmdutil.Wrap(text, cmdutil.Width-14) {
		if i > 0 {
			label = ""
		}
		fmt.Fprintf(w, "  %-12s%s\n", label, l)
	}
}

func budget(st *cmdutil.Styles, n, limit int) string {
	s := fmt.Sprint(n)
	switch {
	case n > limit:
		return st.Fail.Render(s)
	case n >= limit-1:
		return st.Warn.Render(s)
	}
	return st.Pass.Render(s)
}

func resultWord(st *cmdutil.Styles, r spf.Result) string {
	word := strings.ToUpper(string(r))
	switch r {
	case spf.Pass:
		return st.Pass.Render(word)
	case spf.Fail, spf.PermError, spf.TempError:
		return st.Fail.Render(word)
	}
	return st.Warn.Render(word)
}

// writeNode prints one tree line, "label ... cost N  total M", then the
// node's other DNS-querying terms and its children.
func writeNode(w io.Writer, st *cmdutil.Styles, n *spf.Node, prefix, branch string, root bool) {
	label := n.Domain
	if !root {
		label = n.Term
		if !strings.HasSuffix(strings.ToLower(n.Term), strings.ToLower(n.Domain)) {
			label += " → " + n.Domain
		}
	}
	right := fmt.Sprintf("cost %2d  total %2d", n.Cost, n.Lookups)
	if n.Error != "" {
		right = st.Fail.Render(n.Error)
	}
	if n.VoidLookups > 0 && n.Error == "" {
		right = fmt.Sprintf("void %d  ", n.VoidLookups) + right
	}
	line(w, st, prefix+branch, label, "", right)

	childPrefix := prefix
	if !root {
		if branch == "└─ " {
			childPrefix += "   "
		} else {
			childPrefix += "│  "
		}
	}
	type item struct {
		term  *spf.TermCost
		child *spf.Node
	}
	var items []item
	ci := 0
	for i := range n.Terms {
		t := &n.Terms[i]
		if ci < len(n.Children) && n.Children[ci].Term == t.Term {
			items = append(items, item{child: n.Children[ci]})
			ci++
			continue
		}
		items = append(items, item{term: t})
	}
	for ; ci < len(n.Children); ci++ {
		items = append(items, item{child: n.Children[ci]})
	}
	for i, it := range items {
		b := "├─ "
		if i == len(items)-1 {
			b = "└─ "
		}
		if it.child != nil {
			writeNode(w, st, it.child, childPrefix, b, false)
			continue
		}
		right := fmt.Sprintf("cost %2d", it.term.Cost)
		if it.term.Void {
			right = st.Warn.Render("void") + "  " + right
		}
		note := it.term.Note
		if it.term.Void {
			note = ""
		}
		line(w, st, childPrefix+b, it.term.Term, note, right)
	}
}

// line prints a tree line: prefix, label and a dimmed note on the left,
// right aligned to the 80-column width; the label and note are
// shortened when they do not fit.
func line(w io.Writer, st *cmdutil.Styles, prefix, label, note, right string) {
	width := cmdutil.Width - 2
	left := []rune(label)
	if note != "" {
		left = append(left, []rune(" ("+note+")")...)
	}
	avail := width - len([]rune(prefix)) - lipgloss.Width(right) - 2
	if avail < 8 {
		avail = 8
	}
	if len(left) > avail {
		left = append(left[:avail-1], '…')
	}
	text := string(left)
	if n := len([]rune(label)); len(left) > n {
		text = label + st.Dim.Render(string(left[n:]))
	}
	if n := len([]rune(label)); len(left) <= n {
		text = string(left)
	}
	pad := width - len([]rune(prefix)) - len(left) - lipgloss.Width(right)
	if pad < 1 {
		pad = 1
	}
	fmt.Fprintf(w, "  %s%s%s%s\n", st.Dim.Render(prefix), text, strings.Repeat(" ", pad), right)
}
