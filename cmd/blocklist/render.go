package blocklist

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/relayctl/relayctl/cmd/cmdutil"
	"github.com/relayctl/relayctl/pkg/dnsbl"
	"github.com/relayctl/relayctl/pkg/report"
)

// bulkRows is the number of results above which clean targets are not
// shown unless --all.
const bulkRows = 100

const (
	listCol   = 17
	statusCol = 7
	indent    = 2
)

// render prints the results grouped by target: one row per list with its
// status, what a listing means, and the list's TXT reason.
func render(w io.Writer, st *cmdutil.Styles, rep *report.Report, out *Output, all bool) error {
	if len(out.SelfTest) > 0 {
		fmt.Fprintln(w, st.Heading.Render("Self-test (RFC 5782 §5 test points)"))
		for _, s := range out.SelfTest {
			word := st.Pass.Render(pad("ok", statusCol))
			if !s.OK() {
				word = st.Fail.Render(pad(strings.ToUpper(s.Status), statusCol))
				if s.Status == dnsbl.SelfTestRefused || s.Status == dnsbl.SelfTestUnreachable {
					word = st.Warn.Render(pad(strings.ToUpper(s.Status), statusCol))
				}
			}
			msg := ""
			if !s.OK() {
				msg = s.Message
				if len(out.Targets) > 0 {
					msg += "; not asked about the targets"
				}
			}
			row(w, st, s.List, word, msg, "")
		}
		if len(out.Queries) > 0 || len(out.Targets) > 0 {
			fmt.Fprintln(w)
		}
	}

	res := out.Result
	// In bulk runs only listed targets are shown: errors are summed up per
	// list in the findings below, clean targets only counted.
	bulk := !all && len(res.Queries) > bulkRows
	hidden, hiddenErr := 0, 0
	groups := group(res.Queries)
	from := map[string]*dnsbl.TargetInfo{}
	for i := range res.Targets {
		from[res.Targets[i].Target] = &res.Targets[i]
	}
	for _, g := range groups {
		listed, errs := false, false
		for _, q := range g {
			switch q.Status() {
			case "listed":
				listed = true
			case "error":
				errs = true
			}
		}
		if bulk && !listed {
			if errs {
				hiddenErr++
			} else {
				hidden++
			}
			continue
		}
		header(w, st, g[0].Target, g[0].From)
		if info := from[g[0].Target]; info != nil {
			notes(w, st, info.Notes)
		}
		for _, q := range g {
			var word, detail, reason string
			switch q.Status() {
			case "listed":
				word = st.Fail.Render(pad("LISTED", statusCol))
				detail = strings.ReplaceAll(q.Meaning, "; ", "\n") // one line per answer code
				if q.Reason != "" {
					reason = "reason: " + q.Reason
				}
			case "error":
				word = st.Warn.Render(pad("ERROR", statusCol))
				detail = q.Error
				if q.Reason != "" {
					reason = "TXT: " + q.Reason
				}
			default:
				word = st.Pass.Render(pad("clean", statusCol))
			}
			row(w, st, q.List, word, detail, reason)
		}
	}
	// Domain targets whose lookups found nothing still get a line.
	for _, t := range res.Targets {
		if len(t.Notes) > 0 && !hasTarget(groups, t.Target) {
			header(w, st, t.Target, nil)
			notes(w, st, t.Notes)
		}
	}
	if hidden > 0 {
		fmt.Fprintf(w, "%s\n", st.Dim.Render(fmt.Sprintf("%d targets clean on every list not shown (--all shows them)", hidden)))
	}
	if hiddenErr > 0 {
		fmt.Fprintf(w, "%s\n", st.Dim.Render(fmt.Sprintf("%d targets with errors but no listing not shown (--all shows them)", hiddenErr)))
	}
	var other []report.Finding
	for _, f := range rep.Findings { // listings and self-test results are in the table
		if f.Code != "blocklist.listed" && !strings.HasPrefix(f.Code, "blocklist.selftest-") {
			other = append(other, f)
		}
	}
	if len(other) > 0 {
		fmt.Fprintln(w)
		st.WriteFindings(w, other)
	}
	fmt.Fprintln(w)
	var parts []string
	if len(out.SelfTest) > 0 {
		counts := map[string]int{}
		var order []string
		for _, t := range out.SelfTest {
			if counts[t.Status] == 0 {
				order = append(order, t.Status)
			}
			counts[t.Status]++
		}
		var st []string
		for _, o := range order {
			st = append(st, fmt.Sprintf("%d %s", counts[o], o))
		}
		parts = append(parts, "self-test "+strings.Join(st, ", "))
	}
	if len(res.Targets) > 0 {
		s := res.Summary
		parts = append(parts, fmt.Sprintf("%d listed, %d error(s), %d clean (%d queries)", s.Listed, s.Errors, s.Clean, s.Queries))
	}
	word := strings.ToUpper(string(rep.Status))
	lines := cmdutil.Wrap(fmt.Sprintf("%s %s: %s — %s", rep.Command, rep.Target, word, strings.Join(parts, "; ")), cmdutil.Width-2)
	lines[0] = strings.Replace(lines[0], ": "+word, ": "+st.Status(rep.Status), 1)
	fmt.Fprintln(w, strings.Join(lines, "\n  "))
	return nil
}

// header prints a target, and where it came from on the same line when
// that fits in the width, else wrapped below it.
func header(w io.Writer, st *cmdutil.Styles, target string, from []string) {
	if len(from) == 0 {
		fmt.Fprintln(w, st.Bold.Render(target))
		return
	}
	src := "from " + strings.Join(from, "; ")
	if len(target)+2+len([]rune(src)) <= cmdutil.Width {
		fmt.Fprintln(w, st.Bold.Render(target)+"  "+st.Dim.Render(src))
		return
	}
	fmt.Fprintln(w, st.Bold.Render(target))
	for _, l := range cmdutil.Wrap(src, cmdutil.Width-indent-2) {
		fmt.Fprintln(w, strings.Repeat(" ", indent+2)+st.Dim.Render(l))
	}
}

// notes prints a domain's discovery notes ("include: not followed"…).
func notes(w io.Writer, st *cmdutil.Styles, ns []string) {
	for _, n := range ns {
		for i, l := range cmdutil.Wrap(n, cmdutil.Width-indent-6) {
			lead := "note: "
			if i > 0 {
				lead = "      "
			}
			fmt.Fprintln(w, strings.Repeat(" ", indent)+st.Dim.Render(lead+l))
		}
	}
}

func hasTarget(groups [][]dnsbl.Query, t string) bool {
	for _, g := range groups {
		if g[0].Target == t {
			return true
		}
	}
	return false
}

// group splits queries into runs with the same target, in order.
func group(qs []dnsbl.Query) [][]dnsbl.Query {
	var out [][]dnsbl.Query
	index := map[string]int{}
	for _, q := range qs {
		i, ok := index[q.Target]
		if !ok {
			i = len(out)
			index[q.Target] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], q)
	}
	return out
}

// row prints "  LIST             STATUS  detail…" wrapped to the width.
func row(w io.Writer, st *cmdutil.Styles, list, word, detail, reason string) {
	prefix := strings.Repeat(" ", indent) + pad(truncate(list, listCol-1), listCol)
	if word == "" {
		word = pad("", statusCol)
	}
	col := indent + listCol + statusCol + 1
	width := cmdutil.Width - col
	var lines []string
	for _, part := range strings.Split(detail, "\n") {
		lines = append(lines, cmdutil.Wrap(part, width)...)
	}
	if reason != "" {
		for _, l := range cmdutil.Wrap(reason, width) {
			lines = append(lines, st.Dim.Render(l))
		}
	}
	fmt.Fprintln(w, strings.TrimRight(prefix+word+" "+lines[0], " "))
	for _, l := range lines[1:] {
		fmt.Fprintf(w, "%s%s\n", strings.Repeat(" ", col), l)
	}
}

func pad(s string, n int) string {
	if len([]rune(s)) >= n {
		return s
	}
	return s + strings.Repeat(" ", n-len([]rune(s)))
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// progress draws a one-line bar on stderr (a terminal), at most ten times
// a second.
type progress struct {
	mu   sync.Mutex
	w    io.Writer
	last time.Time
}

func newProgress(w io.Writer) *progress { return &progress{w: w} }

func (p *progress) update(done, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if done < total && time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	const width = 40
	filled := done * width / max(total, 1)
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d queries", strings.Repeat("#", filled), strings.Repeat(".", width-filled), done, total)
}

func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprint(p.w, "\r\033[K")
}
