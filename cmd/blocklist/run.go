package blocklist

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/relayctl/relayctl/cmd/cmdutil"
	"github.com/relayctl/relayctl/pkg/dnsbl"
	"github.com/relayctl/relayctl/pkg/report"
)

// Output is the --json result.
type Output struct {
	Zones    []ZoneInfo       `json:"zones"`
	SelfTest []dnsbl.SelfTest `json:"selftest,omitempty"`
	*dnsbl.Result
}

// ZoneInfo describes a list asked.
type ZoneInfo struct {
	Zone string `json:"zone"`
	List string `json:"list"`
	Kind string `json:"kind"`
	IPv6 bool   `json:"ipv6"`
}

func run(ctx context.Context, f *cmdutil.Factory, o *Options) error {
	if ctx == nil {
		ctx = context.Background()
	}
	zs, err := zones(o)
	if err != nil {
		return err
	}
	ts, err := targets(f, o)
	if err != nil {
		return err
	}
	res, err := f.Resolver()
	if err != nil {
		return err
	}
	checker := &dnsbl.Checker{Resolver: res, Zones: zs, Concurrency: o.Concurrency}

	rep := report.New("blocklist", reportTarget(o, ts))
	out := &Output{}

	if o.SelfTest {
		out.SelfTest = checker.SelfTest(ctx)
		var keep []dnsbl.Zone
		for i, st := range out.SelfTest {
			if st.OK() {
				keep = append(keep, zs[i])
				continue
			}
			selfTestFinding(rep, st, len(ts) > 0)
		}
		checker.Zones = keep
	}
	for _, z := range checker.Zones {
		out.Zones = append(out.Zones, ZoneInfo{Zone: z.Name, List: z.Title, Kind: z.Kind.String(), IPv6: z.IPv6})
	}

	if len(ts) > 0 {
		total := 0
		for _, t := range ts {
			total += t.Size() * len(checker.Zones)
		}
		var bar *progress
		if f.IO.StderrTTY && !f.JSON() && total > 100 {
			bar = newProgress(f.IO.ErrOut)
			checker.Progress = bar.update
		}
		out.Result = checker.Check(ctx, ts)
		if bar != nil {
			bar.finish()
		}
		findings(rep, out.Result)
	} else {
		out.Result = &dnsbl.Result{Targets: []dnsbl.TargetInfo{}, Queries: []dnsbl.Query{}}
	}
	rep.Result = out
	return f.Output(rep, func(w io.Writer, st *cmdutil.Styles) error {
		return render(w, st, rep, out, o.All)
	})
}

func reportTarget(o *Options, ts []dnsbl.Target) string {
	switch {
	case len(ts) == 1:
		return strings.TrimSpace(ts[0].Input)
	case len(ts) > 1:
		return fmt.Sprintf("%d targets", len(ts))
	}
	return "selftest"
}

// selfTestFinding reports a list that failed its self-test. Alone
// (--selftest without targets) a dead or list-everything list fails the
// run; with targets the list is left out and the run is incomplete.
func selfTestFinding(rep *report.Report, st dnsbl.SelfTest, withTargets bool) {
	code := "blocklist.selftest-" + st.Status
	msg := fmt.Sprintf("%s (%s): %s", st.List, st.Zone, st.Message)
	if withTargets {
		msg += "; not asked about the targets"
	}
	switch {
	case (st.Status == dnsbl.SelfTestDead || st.Status == dnsbl.SelfTestListsEverything) && !withTargets:
		rep.Error(code, "%s", msg)
	default:
		rep.Warn(code, "%s", msg)
		rep.Incomplete = true
	}
}

// findings turns the result into findings: one per listing, and errors
// summed up per list and kind so that ten thousand refusals make one
// finding.
func findings(rep *report.Report, res *dnsbl.Result) {
	type agg struct {
		zone, list, kind, first string
		n                       int
	}
	var errs []*agg
	index := map[string]*agg{}
	perZone := map[string]int{}
	for _, q := range res.Queries {
		perZone[q.Zone]++
		switch q.Status() {
		case "listed":
			msg := fmt.Sprintf("%s is listed on %s (%s): %s", q.Target, q.List, q.Zone, q.Meaning)
			if q.Reason != "" {
				msg += " — " + q.Reason
			}
			if len(q.From) > 0 {
				msg += " [from " + strings.Join(q.From, "; ") + "]"
			}
			rep.Error("blocklist.listed", "%s", msg)
		case "error":
			k := q.Zone + "\x00" + q.Kind
			a := index[k]
			if a == nil {
				a = &agg{zone: q.Zone, list: q.List, kind: q.Kind, first: q.Error}
				index[k] = a
				errs = append(errs, a)
			}
			a.n++
		}
	}
	for _, a := range errs {
		code := "blocklist.query-failed"
		switch a.kind {
		case dnsbl.KindRefused:
			code = "blocklist.refused"
		case dnsbl.KindBadAnswer:
			code = "blocklist.bad-answer"
		case dnsbl.KindUnexpected:
			code = "blocklist.unexpected-answer"
		}
		hint := ""
		if a.kind == dnsbl.KindServFail && strings.HasSuffix(a.zone, ".dq.spamhaus.net") {
			hint = " (Spamhaus DQS answers REFUSED, seen as SERVFAIL, when the key is not enabled for this zone)"
		}
		rep.Warn(code, "%s (%s): %d of %d queries gave no usable answer (%s): %s%s", a.list, a.zone, a.n, perZone[a.zone], a.kind, a.first, hint)
		rep.Incomplete = true
	}
	for _, t := range res.Targets {
		for _, e := range t.Errors {
			rep.Warn("blocklist.discovery-failed", "%s: could not find all its addresses: %s", t.Target, e)
			rep.Incomplete = true
		}
		if t.Unchecked {
			rep.Warn("blocklist.ipv6-unchecked", "%s: no list in the set answers IPv6 queries, so it was not checked; add one (zen.spamhaus.org, or NAME:ip6)", t.Target)
		}
		if t.Kind == "domain" && len(t.IPs) == 0 && len(t.Errors) == 0 {
			rep.Info("blocklist.no-addresses", "%s: no MX or SPF address found; only the domain lists were asked", t.Target)
		}
	}
}
